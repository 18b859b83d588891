--[[
  Run failed targets again: each named target whose recorded outcome is still `failed` (and, when
  given, has the reason asked for) loses that outcome, starts over with fresh attempts, and goes
  back to the end of its group. Counters move with it (failed -1, pending +1), so they stay exact.
  A completed campaign runs again and its retention clock stops.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3] reason to match ('' for any failed target)
    ARGV[4] events channel
    ARGV[5..] target key, gid, target JSON, ...

  Output:
    n    targets put back (those no longer failed, or of another reason, are left alone)
    NO_SUCH_CAMPAIGN  no such campaign
    WRONG_STATE       the campaign is cancelled
]]
-- @include "groups"
-- @include "limits"
-- @include "outcomes"

local c, reason = ARGV[2], ARGV[3]
local status = ck(c, 'status')
local state = redis.call('HGET', status, 'state')
if not state then return CODES.NO_SUCH_CAMPAIGN end
if state == 'cancelled' then return CODES.WRONG_STATE end
local now = now_ms()
local n = 0
local gids, seen = {}, {}
for i = 5, #ARGV, 3 do
  local key, gid, entry = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local mark = redis.call('HGET', ck(c, 'outcomes'), key)
  if mark then
    local seq, o, r = string.match(mark, '^(%d+)|([^|]*)|(.*)$')
    if o == 'failed' and (reason == '' or r == reason) then
      -- The archived record, if any, is left: its seq is older than the next one this target
      -- gets, and the report reads a record only when its seq matches the marker's.
      redis.call('HDEL', ck(c, 'outcomes'), key)
      redis.call('HDEL', ck(c, 'outbox'), seq)
      redis.call('HDEL', ck(c, 'attempts'), key, 'ra:' .. key, 'e:' .. key)
      redis.call('RPUSH', ck(c, 'g:' .. gid), entry)
      redis.call('HINCRBY', status, 'failed', -1)
      redis.call('HINCRBY', status, 'r:' .. r, -1)
      redis.call('HINCRBY', status, 'pending', 1)
      redis.call('HINCRBY', status, 'admitted', -1)
      make_ready(c, gid)
      if not seen[gid] then
        seen[gid] = true
        gids[#gids + 1] = gid
      end
      n = n + 1
    end
  end
end
if n > 0 then
  -- The figures of a completed campaign left its keys' capacity records when it ended; the
  -- groups that run again count again (for a running campaign this changes nothing).
  use_limits(c, gids)
  redis.call('HINCRBY', status, 'retriedByOperator', n)
  if state == 'completed' then
    for _, k in ipairs(CAMPAIGN_KEYS) do redis.call('PERSIST', ck(c, k)) end
    redis.call('HDEL', status, 'finishedAt')
    redis.call('HSET', status, 'state', 'running', 'updatedAt', now)
    redis.call('PUBLISH', ARGV[4], cjson.encode({ id = c, state = 'running' }))
  end
end
return n
