--[[
  A worker starts a dispatched target: the run takes over the holder's lease with its own run
  token, so a second delivery of the same BullMQ job (after a stall) cannot run alongside it.

  Input:
    KEYS[1] <prefix>:sched:ring, declared so a Redis Cluster client routes the call to the
            node of the prefix's hash tag slot, where every key this script touches lives
    ARGV[1] key prefix
    ARGV[2] holder
    ARGV[3] run token (random, per processor call)
    ARGV[4] lease, ms
    ARGV[5] target key (for the attempts and outcome lookups)
    ARGV[6] events channel (a cancelled campaign may complete here)

  Output:
    { 1, attemptsMade, retryAfterWaits, lastError }  claimed: run the target (lastError '' if none)
    { 0 }        the holder is gone (finished, or its lease expired and the target was requeued)
    { 2 }        another run holds it and its lease is live: this delivery is a duplicate
    { 3, until } the connection is paused by a Retry-After, or the campaign is paused or gated
                 (until 0): the target went back to the head of its group
    { 4 }        the target has an outcome already (or its campaign was cancelled, and it is
                 now recorded skipped/CANCELLED): the holder was released, nothing to do
]]
-- @include _scheduler.lua

return claim_run(ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], now_ms(), false)
