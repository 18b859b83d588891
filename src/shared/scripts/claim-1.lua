--[[
  A worker starts a dispatched target: the run takes over the holder's lease with its own run
  token, so a second delivery of the same BullMQ job (after a stall) cannot run alongside it.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] scheduler caps (includes/caps.lua)
    ARGV[3] holder
    ARGV[4] run token (random, per processor call)
    ARGV[5] lease, ms
    ARGV[6] target key (for the attempts and outcome lookups)
    ARGV[7] events channel (a cancelled campaign may complete here)

  Output:
    { CLAIMED, attemptsMade, retryAfterWaits, lastError, keptUndo }  run the target (lastError ''
                      if none; keptUndo: the pre-image JSON an earlier run kept before its write,
                      '' if none)
    { LOST }          the holder is gone (finished, or its lease expired and the target was requeued)
    { DUPLICATE }     another run holds it and its lease is live: this delivery is a duplicate
    { PAUSED, until } the connection is paused by a Retry-After, or the campaign is paused or
                      gated (until 0): the target went back to the head of its group
    { DONE }          the target has an outcome already (or its campaign was cancelled, and it is
                      now recorded skipped/CANCELLED): the holder was released, nothing to do
]]
-- @include "claim"

return claim_run(ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], now_ms(), false)
