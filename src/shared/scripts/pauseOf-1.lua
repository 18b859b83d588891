--[[
  Whether a connection is paused by a Retry-After, on Redis's clock. A worker asks before a
  platform call when its last word from Redis about the connection (a claim, or this) is older
  than `pauseGateMs`, so no call leaves later than that after a pause was recorded
  (src/worker/pauses.ts). Reads only.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] connection id

  Output:
    { now, pausedUntil }  Redis's clock (ms) and the pause's end (0: never paused; paused only
                          while pausedUntil > now)
]]
-- @include "keys"

return { now_ms(), tonumber(redis.call('HGET', S .. 'pause', ARGV[2]) or '0') }
