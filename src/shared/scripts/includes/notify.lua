--[[
  notify: a campaign's webhook event, recorded in the same script as the state change that
  causes it, so no event is lost and none is made for a change that did not happen.
  Provides: notify. Needs: keys, meta.

  Only when the campaign's meta has 'notify' (the spec's `notify`, written at enqueue) with an
  entry that wants the event: then the event gets the next number of the deployment's
  '<p>:sched:notify-seq' counter, its id is '<c>:<n>' (stable: the receiver's idempotency key), its body is written
  once in <p>:campaign:<c>:notify ('e:<n>', sent and signed as is on every attempt), and each
  notifier that wants it gets a delivery record ('d:<n>|<notifier>', pending) and a member of
  <p>:sched:notify-due due now, where a worker's notifier finds it (worker/notifier.ts). The
  status hash counts them: 'notifyTotal' deliveries, 'notifyDelivered' and 'notifyFailed' settled,
  'notifyChanges' every change to a delivery record (the dashboard reads records only on a change).
]]
-- @include "keys"
-- @include "meta"

local NOTIFY_COUNTS = { 'total', 'upgraded', 'skipped', 'failed', 'would-upgrade', 'would-skip', 'would-fail', 'dryRun', 'state' }

-- Records event `event` of campaign `c` at `now` for every notifier that asked for it; `extra`
-- (a table or nil) adds fields to the body (step, reason, undoCampaign). Returns the event id,
-- or false when nobody asked.
local function notify(c, event, now, extra)
  local wanted = meta_get(c, 'notify')[1]
  if not wanted then return false end
  local to = {}
  for _, n in ipairs(cjson.decode(wanted)) do
    for _, e in ipairs(n.events or {}) do
      if e == event then
        to[#to + 1] = n.to
        break
      end
    end
  end
  if #to == 0 then return false end
  -- One counter for the deployment, kept for good: a campaign id enqueued again after its data
  -- expired never repeats an event id a receiver has seen.
  local n = redis.call('INCR', S .. 'notify-seq')
  local id = c .. ':' .. n
  local v = redis.call('HMGET', ck(c, 'status'), unpack(NOTIFY_COUNTS))
  local counts = { total = tonumber(v[1] or '0'), upgraded = tonumber(v[2] or '0'), skipped = tonumber(v[3] or '0'),
    failed = tonumber(v[4] or '0') }
  if v[8] == '1' then
    counts.wouldUpgrade, counts.wouldSkip, counts.wouldFail = tonumber(v[5] or '0'), tonumber(v[6] or '0'), tonumber(v[7] or '0')
  end
  local body = { id = id, event = event, campaign = c, state = v[9] or cjson.null, counts = counts, at = now }
  for k, x in pairs(extra or {}) do body[k] = x end
  local key = ck(c, 'notify')
  redis.call('HSET', key, 'e:' .. n, cjson.encode(body))
  local record = cjson.encode({ status = 'pending', attempts = 0, createdAt = now, updatedAt = now, nextAt = now })
  for _, name in ipairs(to) do
    redis.call('HSET', key, 'd:' .. n .. '|' .. name, record)
    redis.call('ZADD', S .. 'notify-due', now, id .. '|' .. name)
  end
  -- In the status: whether there are deliveries to read, and whether any changed since a reader
  -- last looked (notifyClaim and notifyDone count their changes too), without reading them.
  redis.call('HINCRBY', ck(c, 'status'), 'notifyTotal', #to)
  redis.call('HINCRBY', ck(c, 'status'), 'notifyChanges', #to)
  -- An event after the campaign ended (undo-started) expires with the rest of its data.
  if redis.call('PTTL', key) == -1 then
    local ttl = redis.call('PTTL', ck(c, 'status'))
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  end
  return id
end
