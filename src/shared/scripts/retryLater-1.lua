--[[
  A run failed in a way worth another attempt: release its slots now (a target waiting out a
  backoff holds nothing) and park the target until its backoff has passed.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] scheduler caps (includes/caps.lua)
    ARGV[3] holder
    ARGV[4] run token
    ARGV[5] target key
    ARGV[6] backoff, ms
    ARGV[7] the attempt's error (scrubbed, bounded): kept for the target's final record
    ARGV[8] optional: the attempt's checksum conflicts, added to the status hash's `conflicts`
    ARGV[9] optional: the attempt's slowest platform call, ms, when the campaign has an adaptive
            limit ('' otherwise): moves the adaptive figures of its keys (adaptive.lua)
    ARGV[10] optional: '1' when the attempt ended on an overload answer (a 429, a 503 or a timeout)

  Output:
    PARKED  the dispatcher puts it back at the head of its group when due
    LOST    the lease was lost meanwhile: the target is already back in its group, nothing changed
]]
-- @include "slots"
-- @include "adaptive"

local holder, token, targetKey, backoffMs = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local v = redis.call('HGET', S .. 'inflight', holder)
if not v then return CODES.LOST end
local _, held = parse_inflight(v)
if held ~= token then return CODES.LOST end

local c = campaign_of(holder)
local gid, _, entry = release(holder)
local status = ck(c, 'status')
if redis.call('EXISTS', status) == 0 then return CODES.LOST end
local now = now_ms()
if (ARGV[9] or '') ~= '' then adapt(c, group_keys(c, gid), tonumber(ARGV[9]), ARGV[10] == '1', now) end
redis.call('HINCRBY', ck(c, 'attempts'), targetKey, 1)
redis.call('HSET', ck(c, 'attempts'), 'e:' .. targetKey, ARGV[7])
redis.call('ZADD', S .. 'retry', now + backoffMs, c .. '|' .. gid .. '|' .. entry)
redis.call('HINCRBY', status, 'active', -1)
redis.call('HINCRBY', status, 'pending', 1)
redis.call('HINCRBY', status, 'retries', 1)
local conflicts = tonumber(ARGV[8] or '0') or 0
if conflicts > 0 then redis.call('HINCRBY', status, 'conflicts', conflicts) end
return CODES.PARKED
