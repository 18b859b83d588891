--[[
  The platform answered 429 (or 503 with Retry-After) for this connection: no call to the
  connection starts before the time named. The target goes back to the head of its group
  without using an attempt; its waits are counted (and bounded by the worker).

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] scheduler caps (includes/caps.lua)
    ARGV[3] holder
    ARGV[4] run token
    ARGV[5] target key
    ARGV[6] wait, ms (Retry-After, already clipped to the configured maximum)
    ARGV[7] the answer's error (scrubbed, bounded): kept for the target's final record
    ARGV[8] events channel: `{"pause": connection, "until": ms, "now": ms}` tells every worker,
            so targets already running hold their next call too
    ARGV[9] optional: the attempt's checksum conflicts, added to the status hash's `conflicts`
    ARGV[10] optional: the attempt's slowest platform call, ms, when the campaign has an
             adaptive limit ('' otherwise): an overload answer, which cuts the adaptive figures
             of its keys (adaptive.lua) on top of the pause, and restarts their climb in slow
             start from under the cut

  Output:
    { THROTTLED, pausedUntil }  requeued; the connection is paused until then (a later pause wins)
    { LOST }                    the lease was lost meanwhile: nothing changed
]]
-- @include "meta"
-- @include "slots"
-- @include "adaptive"

local holder, token, targetKey, waitMs = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local v = redis.call('HGET', S .. 'inflight', holder)
if not v then return { CODES.LOST } end
local _, held = parse_inflight(v)
if held ~= token then return { CODES.LOST } end

local c = campaign_of(holder)
local now = now_ms()
local pausedUntil, conn = pause_of(c)
local untilMs = math.max(now + waitMs, pausedUntil)
redis.call('HSET', S .. 'pause', conn, untilMs)
redis.call('PUBLISH', ARGV[8], cjson.encode({ pause = conn, ['until'] = untilMs, now = now }))

local gid, _, entry = release(holder)
local status = ck(c, 'status')
if redis.call('EXISTS', status) == 0 then return { CODES.LOST } end
if (ARGV[10] or '') ~= '' then adapt(c, group_keys(c, gid), tonumber(ARGV[10]), true, now, true) end
redis.call('HINCRBY', ck(c, 'attempts'), 'ra:' .. targetKey, 1)
redis.call('HSET', ck(c, 'attempts'), 'e:' .. targetKey, ARGV[7])
redis.call('HINCRBY', status, 'retryAfterWaits', 1)
redis.call('HINCRBY', status, 'retryAfterWaitMs', waitMs)
local conflicts = tonumber(ARGV[9] or '0') or 0
if conflicts > 0 then redis.call('HINCRBY', status, 'conflicts', conflicts) end
requeue(c, gid, entry, untilMs, now)
return { CODES.THROTTLED, untilMs }
