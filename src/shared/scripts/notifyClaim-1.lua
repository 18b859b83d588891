--[[
  Take webhook deliveries that are due (worker/notifier.ts): each taken one counts an attempt and
  stays in <p>:sched:notify-due, due again when the sender's lease ends, so a sender killed
  mid-delivery loses nothing: the delivery comes due again for any worker.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] most deliveries to take
    ARGV[3] lease (ms): longer than a delivery's timeout

  Output:
    { now, next due (ms, -1: none), member, body, attempts, createdAt, ... } for each taken
    delivery (member '<c>:<n>|<notifier>'); deliveries whose campaign's data expired are dropped
]]
-- @include "keys"

local max, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local due = S .. 'notify-due'
local now = now_ms()
local out = { now, -1 }
for _, m in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, max)) do
  local c, n, name = string.match(m, '^(.*):(%d+)|(.*)$')
  local body, rec
  if c then
    local r = redis.call('HMGET', ck(c, 'notify'), 'e:' .. n, 'd:' .. n .. '|' .. name)
    body, rec = r[1], r[2]
  end
  if not body or not rec then
    redis.call('ZREM', due, m)
  else
    local d = cjson.decode(rec)
    d.attempts = (d.attempts or 0) + 1
    d.updatedAt = now
    d.nextAt = nil
    redis.call('HSET', ck(c, 'notify'), 'd:' .. n .. '|' .. name, cjson.encode(d))
    redis.call('ZADD', due, now + lease, m)
    out[#out + 1] = m
    out[#out + 1] = body
    out[#out + 1] = d.attempts
    out[#out + 1] = d.createdAt or now
  end
end
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
if first[2] then out[2] = tonumber(first[2]) end
return out
