--[[
  Store maintenance-window intervals a worker computed for zones a dispatch step reported stale
  (includes/windows.lua): the campaign's :win hash, zone -> '<from>|<until>' (ms, window clock).
  A campaign that has ended or is gone is left alone, so no key outlives its retention.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3..] zone, '<from>|<until>', zone, ...

  Output:
    STORED, or WRONG_STATE (the campaign has ended or is gone: nothing written)
]]
-- @include "keys"

local c = ARGV[2]
local state = redis.call('HGET', ck(c, 'status'), 'state')
if not state or state == 'completed' or state == 'cancelled' then return CODES.WRONG_STATE end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', ck(c, 'win'), unpack(fields)) end
return CODES.STORED
