--[[
  Store maintenance-window intervals a worker computed for zones a dispatch step reported stale
  (includes/windows.lua): the campaign's :win hash, zone -> '<from>|<until>' (ms, window clock).
  The groups that waited for a stored zone (:winwait, gid -> zone, includes/windows.lua) are
  made ready, so the next dispatch step parks them at their opening or runs them.
  A campaign that has ended or is gone is left alone, so no key outlives its retention.
  Needs: keys, groups.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3..] zone, '<from>|<until>', zone, ...

  Output:
    STORED, or WRONG_STATE (the campaign has ended or is gone: nothing written)
]]
-- @include "keys"
-- @include "groups"

local c = ARGV[2]
local state = redis.call('HGET', ck(c, 'status'), 'state')
if not state or state == 'completed' or state == 'cancelled' then return CODES.WRONG_STATE end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', ck(c, 'win'), unpack(fields)) end
local stored = {}
for i = 3, #ARGV, 2 do stored[ARGV[i]] = true end
local winwait, gstate = ck(c, 'winwait'), ck(c, 'gstate')
local waiting = redis.call('HGETALL', winwait)
for i = 1, #waiting, 2 do
  local gid = waiting[i]
  if stored[waiting[i + 1]] then
    redis.call('HDEL', winwait, gid)
    -- Anything else ('r', 'b', gone) was woken or moved meanwhile; 'd' for another
    -- reason (a rate or Retry-After pause) only wakes early, and dispatch parks it again.
    if redis.call('HGET', gstate, gid) == 'd' then make_ready(c, gid) end
  end
end
return CODES.STORED
