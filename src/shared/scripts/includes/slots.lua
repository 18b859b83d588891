--[[
  slots: a holder's leased slots on its keys, given back (waking a waiter per slot) and its
  target put back in its group.
  Provides: wake_one, release, requeue. Needs: keys, caps, groups, outcomes.
  (outcomes: a cancelled campaign's target is recorded, not put back.)
]]
-- @include "keys"
-- @include "caps"
-- @include "groups"
-- @include "outcomes"

-- A slot freed on the key: the campaign first in its queue gets another look for its first
-- waiting group, and goes to the back if it has more, so campaigns waiting on a key take
-- turns however many groups each has. Stale entries (a group woken by another path) are skipped.
local function wake_one(key)
  local queue = S .. 'waiting:' .. key
  for _ = 1, CAPS.wakeCampaignsPerSlot do
    local c = redis.call('LPOP', queue)
    if not c then return end
    local waiting = ck(c, 'w:' .. key)
    local gstate = ck(c, 'gstate')
    local woke = false
    for _ = 1, CAPS.wakeGroupsPerCampaign do
      local gid = redis.call('LPOP', waiting)
      if not gid then break end
      if redis.call('HGET', gstate, gid) == 'b' then
        make_ready(c, gid)
        woke = true
        break
      end
    end
    if redis.call('LLEN', waiting) > 0 then redis.call('RPUSH', queue, c) end
    if woke then return end
  end
end

-- Frees the holder's slots (waking a waiter per slot) and forgets the holder.
-- Returns gid, token, entry of the released holder, or nil when it was not held.
-- `v`: its inflight value, when the caller has just read it.
local function release(holder, v)
  v = v or redis.call('HGET', S .. 'inflight', holder)
  redis.call('ZREM', S .. 'leases', holder)
  if not v then return nil end
  local gid, token, entry = parse_inflight(v)
  local c = campaign_of(holder)
  for _, k in ipairs(group_keys(c, gid)) do
    if redis.call('ZREM', S .. 'slot:' .. k[1], holder) == 1 then
      wake_one(k[1])
    end
  end
  redis.call('HDEL', S .. 'inflight', holder)
  return gid, token, entry
end

-- Puts a released holder's target back at the head of its group: it runs next.
local function requeue(c, gid, entry, wakeAt, now)
  local status = ck(c, 'status')
  local state = redis.call('HGET', status, 'state')
  if not state then return end
  redis.call('HINCRBY', status, 'active', -1)
  if state == 'cancelled' then return cancel_returned(c, entry, now) end
  redis.call('LPUSH', ck(c, 'g:' .. gid), entry)
  redis.call('HINCRBY', status, 'pending', 1)
  redis.call('HINCRBY', status, 'admitted', -1)
  ensure_scheduled(c, gid, wakeAt, now)
end
