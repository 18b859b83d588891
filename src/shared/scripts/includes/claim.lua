--[[
  claim: a run takes over a dispatched holder with its run token.
  Provides: claimed, claim_run. Needs: keys, meta, groups, slots, outcomes.
]]
-- @include "keys"
-- @include "meta"
-- @include "groups"
-- @include "slots"
-- @include "outcomes"

-- What a claim answers: the target's attempts so far, its Retry-After waits, its last error and
-- the pre-image an earlier run kept before its write ('u:', undo), which may have landed.
local function claimed(c, targetKey)
  local a = redis.call('HMGET', ck(c, 'attempts'), targetKey, 'ra:' .. targetKey, 'e:' .. targetKey, 'u:' .. targetKey)
  return { CODES.CLAIMED, tonumber(a[1] or '0'), tonumber(a[2] or '0'), a[3] or '', a[4] or '' }
end

-- A run takes over a dispatched holder with its token (claim-1.lua; finishMany-1.lua for the
-- target it picked for the same worker). Returns claim-1.lua's output. `fresh`: the holder was
-- picked in this same script call with this token already in its inflight entry, by a dispatch
-- step that served only a running campaign on an unpaused connection and set the lease and
-- slots to now + leaseMs; those checks and writes are then skipped (they are on every continued
-- target's path), and only the outcome is looked for.
local function claim_run(holder, token, leaseMs, targetKey, channel, now, fresh)
  local c = campaign_of(holder)
  if fresh then
    if redis.call('HEXISTS', ck(c, 'outcomes'), targetKey) == 1 then
      release(holder)
      redis.call('HINCRBY', ck(c, 'status'), 'active', -1)
      return { CODES.DONE }
    end
    return claimed(c, targetKey)
  end

  local v = redis.call('HGET', S .. 'inflight', holder)
  if not v then return { CODES.LOST } end
  local gid, held, entry = parse_inflight(v)

  local expiry = tonumber(redis.call('ZSCORE', S .. 'leases', holder) or '0')
  if expiry <= now then
    release(holder, v)
    requeue(c, gid, entry, 0, now)
    return { CODES.LOST }
  end
  if held ~= '' and held ~= token then return { CODES.DUPLICATE } end

  if redis.call('HEXISTS', ck(c, 'outcomes'), targetKey) == 1 then
    release(holder, v)
    redis.call('HINCRBY', ck(c, 'status'), 'active', -1)
    return { CODES.DONE }
  end

  local state = redis.call('HGET', ck(c, 'status'), 'state')
  if state == 'cancelled' then
    release(holder, v)
    redis.call('HINCRBY', ck(c, 'status'), 'active', -1)
    record_outcome(c, holder_seq(holder), targetKey, 'skipped', 'CANCELLED', cancelled_record(c, targetKey, cjson.decode(entry), now), now, channel)
    return { CODES.DONE }
  end
  if state ~= 'running' then
    release(holder, v)
    requeue(c, gid, entry, 0, now)
    return { CODES.PAUSED, 0 }
  end

  local pausedUntil = pause_of(c)
  if pausedUntil > now then
    release(holder, v)
    requeue(c, gid, entry, pausedUntil, now)
    return { CODES.PAUSED, pausedUntil }
  end

  local newExpiry = now + leaseMs
  redis.call('ZADD', S .. 'leases', newExpiry, holder)
  for _, k in ipairs(group_keys(c, gid)) do
    redis.call('ZADD', S .. 'slot:' .. k[1], 'XX', newExpiry, holder)
  end
  redis.call('HSET', S .. 'inflight', holder, gid .. '|' .. token .. '|' .. entry)
  return claimed(c, targetKey)
end
