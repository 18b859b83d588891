--[[
  Record a webhook event that no scheduler script makes: `undo-started` of the campaign an undo
  campaign takes back (producer/undo.ts, after the undo campaign exists). Once per campaign and
  event, however often it is asked (a crash before it, then `undo` run again, asks again).

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3] event (notify.lua)
    ARGV[4] JSON object of fields the event's body adds ('{}' for none)
    ARGV[5] events channel: `{"id","notify"}` wakes the workers' notifiers when recorded

  Output:
    RECORDED      recorded now
    NOT_RECORDED  recorded before, or nobody asked for it
    NO_SUCH_CAMPAIGN  no such campaign
]]
-- @include "keys"
-- @include "meta"
-- @include "notify"

local c, event = ARGV[2], ARGV[3]
if redis.call('EXISTS', ck(c, 'status')) == 0 then return CODES.NO_SUCH_CAMPAIGN end
if redis.call('HSETNX', meta_key(c), 'ev:' .. event, 1) == 0 then return CODES.NOT_RECORDED end
local id = notify(c, event, now_ms(), cjson.decode(ARGV[4]))
if not id then return CODES.NOT_RECORDED end
redis.call('PUBLISH', ARGV[5], cjson.encode({ id = c, notify = id }))
return CODES.RECORDED
