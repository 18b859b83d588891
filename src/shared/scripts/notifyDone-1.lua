--[[
  A webhook delivery attempt's end (worker/notifier.ts): delivered, to be tried again after a
  backoff (given up instead once that would pass the delivery's age limit), or given up at once
  (the egress guard refused the address). Only while the delivery is still due, and only for its
  latest attempt: a sender whose lease ran out changes nothing, whether another sender finished
  the delivery or is sending a newer attempt of it (its result, or its removal of the member,
  would otherwise overwrite that attempt's or cut it off).

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] member '<c>:<n>|<notifier>'
    ARGV[3] delivered | retry | failed
    ARGV[4] backoff before the next attempt (ms; retry)
    ARGV[5] the attempt's error, scrubbed ('' when delivered)
    ARGV[6] age limit (ms since the event) past which a delivery is given up
    ARGV[7] the attempt this result is of (its number, from notifyClaim). Scripts are loaded by
            their text, so a worker of an earlier version runs its own earlier script, never this
            one: the check holds once every worker runs this version.

  Output:
    DELIVERED, RESCHEDULED or GAVE_UP; NOT_DUE when the delivery is no longer due, or another
    attempt of it was claimed since this one
]]
-- @include "keys"

local m, outcome, delay, err, maxAge = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local due = S .. 'notify-due'
if not redis.call('ZSCORE', due, m) then return CODES.NOT_DUE end
local c, n, name = string.match(m, '^(.*):(%d+)|(.*)$')
local field = 'd:' .. n .. '|' .. name
local rec = redis.call('HGET', ck(c, 'notify'), field)
if not rec then
  redis.call('ZREM', due, m)
  return CODES.NOT_DUE
end
local now = now_ms()
local d = cjson.decode(rec)
-- The claim counted this attempt; a later claim (after this sender's lease ran out) counted another.
if tonumber(ARGV[7]) ~= (d.attempts or 0) then return CODES.NOT_DUE end
d.updatedAt = now
local code
if outcome == 'delivered' then
  d.status, d.deliveredAt, code = 'delivered', now, CODES.DELIVERED
  redis.call('ZREM', due, m)
elseif outcome == 'retry' and now + delay - (d.createdAt or now) <= maxAge then
  d.status, d.lastError, d.nextAt, code = 'pending', err, now + delay, CODES.RESCHEDULED
  redis.call('ZADD', due, now + delay, m)
else
  d.status, d.lastError, d.failedAt, code = 'failed', err, now, CODES.GAVE_UP
  redis.call('ZREM', due, m)
end
redis.call('HSET', ck(c, 'notify'), field, cjson.encode(d))
-- The status's delivery counts (includes/notify.lua): read by the dashboard instead of the records.
local st = ck(c, 'status')
if redis.call('EXISTS', st) == 1 then
  redis.call('HINCRBY', st, 'notifyChanges', 1)
  if d.status ~= 'pending' then redis.call('HINCRBY', st, d.status == 'delivered' and 'notifyDelivered' or 'notifyFailed', 1) end
end
return code
