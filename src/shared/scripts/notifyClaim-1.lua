--[[
  Take webhook deliveries that are due (worker/notifier.ts): each taken one counts an attempt and
  stays in <p>:sched:notify-due, due again when the sender's lease ends, so a sender killed
  mid-delivery loses nothing: the delivery comes due again for any worker.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] most deliveries to take
    ARGV[3] lease (ms): longer than a delivery's timeout
    ARGV[4] the notifiers this worker can send to (registered, secret set), comma separated:
            another's deliveries are left for a worker that can (a fleet part-way through a
            registry change, a secret set on some workers only)

  Output:
    { now, next due (ms, -1: none), member, body, attempts, createdAt, ... } for each taken
    delivery (member '<c>:<n>|<notifier>'); deliveries whose campaign's data expired are dropped
]]
-- @include "keys"

local max, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local due = S .. 'notify-due'
local now = now_ms()
local out = { now, -1 }
local usable = {}
for name in string.gmatch(ARGV[4] or '', '[^,]+') do usable[name] = true end
-- Deliveries to other notifiers are passed over; a bounded look keeps a backlog of them from
-- making this script long.
local look = max * 10

local function take(m, c, n, name)
  local r = redis.call('HMGET', ck(c, 'notify'), 'e:' .. n, 'd:' .. n .. '|' .. name)
  local body, rec = r[1], r[2]
  if not body or not rec then
    redis.call('ZREM', due, m)
    return
  end
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

for _, m in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, look)) do
  if (#out - 2) / 4 >= max then break end
  local c, n, name = string.match(m, '^(.*):(%d+)|(.*)$')
  if not c then
    redis.call('ZREM', due, m)
  elseif usable[name] then
    take(m, c, n, name)
  end
end
-- The next delivery this worker could take: its timer's time (others' are not its business).
local ahead = redis.call('ZRANGE', due, 0, look - 1, 'WITHSCORES')
for i = 1, #ahead, 2 do
  local name = string.match(ahead[i], '|(.*)$')
  if name and usable[name] then
    out[2] = tonumber(ahead[i + 1])
    break
  end
end
return out
