--[[
  Take webhook deliveries that are due (worker/notifier.ts): each taken one counts an attempt and
  stays in <p>:sched:notify-due, due again when the sender's lease ends, so a sender killed
  mid-delivery loses nothing: the delivery comes due again for any worker.

  Every due member looked at is also kept in order, whichever notifier it is for: one whose
  delivery record is gone (its campaign's data expired) is removed, and one older than the age
  limit is given up ('failed'), so neither a notifier no worker has any more nor a sender that
  keeps dying mid-send leaves a member due for ever.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] most deliveries to take (0: only the upkeep above)
    ARGV[3] lease (ms): longer than a delivery's timeout
    ARGV[4] the notifiers this worker can send to (registered, secret set), comma separated:
            another's deliveries are left for a worker that can (a fleet part-way through a
            registry change, a secret set on some workers only)
    ARGV[5] age limit (ms since the event) past which a delivery is given up
    ARGV[6] how long a notifier counts as having a sender after a worker that can send to it
            last looked (ms); a due delivery to a notifier without one is put back by this much

  Output:
    { now, next due (ms, -1: none), given up, member, body, attempts, createdAt, ... } for each
    taken delivery (member '<c>:<n>|<notifier>')
]]
-- @include "keys"

local max, lease, maxAge, seenFor = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
local due = S .. 'notify-due'
local senders = S .. 'notify-senders'
local now = now_ms()
local out = { now, -1, 0 }
local usable, names = {}, {}
for name in string.gmatch(ARGV[4] or '', '[^,]+') do
  usable[name] = true
  names[#names + 1] = name
  names[#names + 1] = now
end
-- Other workers skip this worker's notifiers' deliveries only while it keeps looking.
if #names > 0 then redis.call('HSET', senders, unpack(names)) end
-- A bounded look keeps a backlog from making this script long. Deliveries another worker will
-- take are passed over and count against `look` (that worker drains them from the head); those
-- removed, given up or put back (no live worker can send them) leave the due range, so they
-- never hold the head: they count against a larger bound of their own, `upkeep`.
local look = math.max(max, 1) * 10
local upkeep = look * 10
local passed, cleaned = 0, 0

local function taken() return (#out - 3) / 4 end

-- Writes a delivery record, and counts the change in the status (includes/notify.lua): settled
-- ('notifyFailed') when it was given up.
local function settle(c, field, d)
  redis.call('HSET', ck(c, 'notify'), field, cjson.encode(d))
  local st = ck(c, 'status')
  if redis.call('EXISTS', st) == 1 then
    redis.call('HINCRBY', st, 'notifyChanges', 1)
    if d.status == 'failed' then redis.call('HINCRBY', st, 'notifyFailed', 1) end
  end
end

-- One due member: taken (true), passed over (false), or out of the due range (nil).
local function visit(m)
  local c, n, name = string.match(m, '^(.*):(%d+)|(.*)$')
  local field = c and ('d:' .. n .. '|' .. name)
  local rec = c and redis.call('HGET', ck(c, 'notify'), field)
  if not rec then
    -- Unreadable, or its campaign's data expired: nothing left to send.
    redis.call('ZREM', due, m)
    return nil
  end
  local d = cjson.decode(rec)
  if now - (d.createdAt or now) > maxAge then
    -- Its senders kept dying, or no worker could send it: notifyDone never judged it.
    d.status, d.failedAt, d.updatedAt, d.nextAt = 'failed', now, now, nil
    d.lastError = 'given up: not delivered within the age limit' .. (d.lastError and ('; last error: ' .. d.lastError) or '')
    settle(c, field, d)
    redis.call('ZREM', due, m)
    out[3] = out[3] + 1
    return nil
  end
  if not usable[name] then
    local seen = tonumber(redis.call('HGET', senders, name) or '')
    if seen and now - seen <= seenFor then return false end
    redis.call('ZADD', due, now + seenFor, m)
    return nil
  end
  local body = redis.call('HGET', ck(c, 'notify'), 'e:' .. n)
  if not body then
    redis.call('ZREM', due, m)
    return nil
  end
  d.attempts = (d.attempts or 0) + 1
  d.updatedAt = now
  d.nextAt = nil
  settle(c, field, d)
  redis.call('ZADD', due, now + lease, m)
  out[#out + 1] = m
  out[#out + 1] = body
  out[#out + 1] = d.attempts
  out[#out + 1] = d.createdAt or now
  return true
end

-- Members passed over stay in the range (the next page starts after them); every other visit
-- takes its member out of it, so each page makes progress.
while passed < look and cleaned < upkeep and (max == 0 or taken() < max) do
  local page = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', passed, look)
  if #page == 0 then break end
  for _, m in ipairs(page) do
    if (max > 0 and taken() >= max) or passed >= look or cleaned >= upkeep then break end
    local r = visit(m)
    if r == false then passed = passed + 1 elseif r == nil then cleaned = cleaned + 1 end
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
