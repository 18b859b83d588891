--[[
  Drain a cancelled campaign: up to ARGV[3] targets that never started (waiting in their groups
  or parked for a retry) are recorded skipped/CANCELLED. Called in a loop until it returns 0, so
  a million pending targets never block Redis in one call. Targets in flight finish as they
  would have; dispatched ones not yet started are recorded by `claim`.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3] most targets to drain in this call
    ARGV[4] events channel (the campaign may end here)

  Output:
    n    targets recorded skipped/CANCELLED in this call (0: nothing left)
    NO_SUCH_CAMPAIGN  no such campaign
    WRONG_STATE       the campaign is not cancelled
]]
-- @include "meta"
-- @include "outcomes"

local c, max = ARGV[2], tonumber(ARGV[3])
local status = ck(c, 'status')
local state = redis.call('HGET', status, 'state')
if not state then return CODES.NO_SUCH_CAMPAIGN end
if state ~= 'cancelled' then return CODES.WRONG_STATE end
local now = now_ms()
local drained = 0

local function drain(entry)
  local key, t = target_key(c, entry)
  redis.call('HINCRBY', status, 'pending', -1)
  record_outcome(c, next_seq(c), key, 'skipped', 'CANCELLED', cancelled_record(c, key, t, now), now, ARGV[4])
  drained = drained + 1
end

local fields = redis.call('HKEYS', ck(c, 'groups'))
for _, gid in ipairs(fields) do
  if drained >= max then break end
  if string.match(gid, '^%d+$') then
    local list = ck(c, 'g:' .. gid)
    local entries = redis.call('LPOP', list, max - drained)
    if entries then
      for _, entry in ipairs(entries) do drain(entry) end
    end
    unpark_window(c, gid)
    redis.call('HDEL', ck(c, 'gstate'), gid)
  end
end
if drained < max then
  local prefix = c .. '|'
  for _, m in ipairs(redis.call('ZRANGE', S .. 'retry', 0, -1)) do
    if drained >= max then break end
    if string.sub(m, 1, #prefix) == prefix then
      redis.call('ZREM', S .. 'retry', m)
      drain(string.match(m, '^[^|]*|%d+|(.*)$'))
    end
  end
end
return drained
