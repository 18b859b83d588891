--[[
  A worker's heartbeat: keeps its registration (its concurrency counts in the dispatch window,
  <p>:sched:capacity, the sum over live workers, recomputed here)
  and extends the leases of the targets it is running. A lease that is gone or taken is
  reported, and the worker aborts that run: its slot may already be someone else's.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] lease, ms
    ARGV[3] worker id
    ARGV[4] worker concurrency (0: the worker is leaving; its registration is removed)
    ARGV[5..] holder, run token, holder, run token, ...

  Output:
    { now, lostHolder1, lostHolder2, ... }
]]
-- @include "groups"

local leaseMs, workerId, concurrency = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local expiry = now + leaseMs

for _, m in ipairs(redis.call('ZRANGEBYSCORE', S .. 'workers', '-inf', now)) do
  redis.call('ZREM', S .. 'workers', m)
end
-- One member per worker: drop its previous one (a handful of workers: a short scan).
for _, m in ipairs(redis.call('ZRANGE', S .. 'workers', 0, -1)) do
  if string.sub(m, 1, #workerId + 1) == workerId .. '|' then redis.call('ZREM', S .. 'workers', m) end
end
if concurrency > 0 then
  redis.call('ZADD', S .. 'workers', expiry, workerId .. '|' .. concurrency)
end
-- The dispatch window, summed here (every few seconds) rather than on every dispatch.
local capacity = 0
for _, m in ipairs(redis.call('ZRANGE', S .. 'workers', 0, -1)) do
  capacity = capacity + tonumber(string.match(m, '|(%d+)$'))
end
redis.call('SET', S .. 'capacity', capacity)

local out = { now }
for i = 5, #ARGV, 2 do
  local holder, token = ARGV[i], ARGV[i + 1]
  local v = redis.call('HGET', S .. 'inflight', holder)
  local gid, held
  if v then gid, held = parse_inflight(v) end
  local live = tonumber(redis.call('ZSCORE', S .. 'leases', holder) or '0') > now
  if v and held == token and live then
    redis.call('ZADD', S .. 'leases', expiry, holder)
    for _, k in ipairs(group_keys(campaign_of(holder), gid)) do
      redis.call('ZADD', S .. 'slot:' .. k[1], 'XX', expiry, holder)
    end
  else
    out[#out + 1] = holder
  end
end
return out
