--[[
  dispatch: the dispatch step, shared by dispatch-1.lua and finishMany-1.lua (a finished target's
  slot goes to the next one in the same call).
  Provides: dispatch_step. Needs: keys, caps, meta, groups, slots, adaptive, steps, windows, counters.
]]
-- @include "keys"
-- @include "caps"
-- @include "meta"
-- @include "groups"
-- @include "slots"
-- @include "adaptive"
-- @include "steps"
-- @include "windows"
-- @include "counters"

-- Returns { now, nextWakeMs, reclaimed, holder, entry, ... }. `maintain` runs the housekeeping
-- first (reclaim, due retries and delays) and reports the next due time; finishMany-1.lua leaves it
-- to the dispatcher's timer and only picks (nextWakeMs -1), as every command in a script counts
-- on the hot path. `tokens` (optional): the run tokens of the runs that will claim the first
-- picks, in order (finishMany-1.lua), written into the picks' inflight entries at once, so the
-- claim in the same call need not read and write them again. The caller flushes the counts
-- (counters.lua).
local function dispatch_step(maxPicks, leaseMs, now, maintain, tokens)
  -- The loop reads `admitted` from Redis at a campaign's first look and then keeps its own
  -- count: any this call deferred so far goes to Redis first (none, as the scripts are; a
  -- second step in one call would need it). A settled run's `active -1` stays deferred, to
  -- cancel the next pick's `+1`.
  flush_counts('admitted')
  local reclaimed = 0
  if maintain then
    -- 1. Expired leases: the holder died, froze, or its job never started. Its slots return now.
    for _, holder in ipairs(redis.call('ZRANGEBYSCORE', S .. 'leases', '-inf', now, 'LIMIT', 0, CAPS.reclaimBatch)) do
      local c = campaign_of(holder)
      local gid, _, entry = release(holder)
      if gid then
        requeue(c, gid, entry, 0, now)
        redis.call('HINCRBY', ck(c, 'status'), 'reclaimed', 1)
        reclaimed = reclaimed + 1
      end
    end

    -- 2. Retries whose backoff has passed go back to the head of their group.
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', S .. 'retry', '-inf', now, 'LIMIT', 0, CAPS.wakeDueBatch)) do
      redis.call('ZREM', S .. 'retry', m)
      local c, gid, entry = string.match(m, '^([^|]*)|(%d+)|(.*)$')
      local state = redis.call('HGET', ck(c, 'status'), 'state')
      if state == 'cancelled' then
        -- Parked after its campaign's drain (the run failed after the cancel).
        redis.call('HINCRBY', ck(c, 'status'), 'pending', -1)
        cancel_returned(c, entry, now)
      elseif state then
        redis.call('LPUSH', ck(c, 'g:' .. gid), entry)
        redis.call('HINCRBY', ck(c, 'status'), 'admitted', -1)
        make_ready(c, gid)
      end
    end

    -- 3. Groups whose rate window or Retry-After pause has passed, or whose maintenance
    --    window opened (:winpark, includes/windows.lua).
    local opened = {}
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', S .. 'delayed', '-inf', now, 'LIMIT', 0, CAPS.wakeDueBatch)) do
      redis.call('ZREM', S .. 'delayed', m)
      local c, gid = string.match(m, '^(.*)|(%d+)$')
      local gs = redis.call('HGET', ck(c, 'gstate'), gid)
      if gs == 'd' and make_ready(c, gid) then opened[c] = true end
    end
    for c in pairs(opened) do window_next(c, now) end

  end

  -- 4. The window: BullMQ never holds more reserved or running targets than the live workers
  --    can run at once, so a reserved target starts at once and its slot is not idle. The sum
  --    of live workers' concurrency is kept by renew-1.lua.
  local capacity = tonumber(redis.call('GET', S .. 'capacity') or '0')
  local budget = math.min(maxPicks, capacity - redis.call('HLEN', S .. 'inflight'))

  -- Tries one ready group, which the loop has rotated to the back of its campaign's ready list.
  -- Returns the holder and picked entry, and true when the group stays in the ready list (it has
  -- more and room for them); or nil after moving the group where it waits (the loop then takes it
  -- out of the ready list). Keys that had room but were not used wake one waiter each, so a slot is never left
  -- free while a group that could use it sleeps. A scoped key's figures are its capacity
  -- record's (the strictest among live campaigns); on a registry key the group keeps to its own
  -- concurrency, and its key's clock runs at the registry's rate ('=s').
  -- Per campaign, read once per step: its connection's pause and window zone (nothing in a
  -- step records a pause) and the status fields the loop reads (only `admitted` moves in a
  -- step, by its own picks, and is kept up to date here).
  local paused, seen = {}, {}
  local function try_group(c, gid, st, token)
    local gstate = ck(c, 'gstate')
    local status = ck(c, 'status')
    local keys = group_keys(c, gid)
    local function wake_unused(upto)
      for j = 1, upto do wake_one(keys[j][1]) end
    end

    local p = paused[c]
    if not p then
      local pausedUntil, _, sched = pause_of(c)
      p = { pausedUntil, sched }
      paused[c] = p
    end
    local pausedUntil, sched = p[1], p[2]
    if pausedUntil > now then
      delay_group(c, gid, pausedUntil)
      return nil
    end
    -- Maintenance windows: only a campaign with a schedule pays for the check.
    if sched and not window_gate(c, gid, sched, now) then return nil end

    local limit = {}
    for i, k in ipairs(keys) do
      -- own: the spacing of this campaign's own clock on a registry key whose rate it lowered.
      local key, concurrency, spacing, own = k[1], k[2], k[3] > 0 and k[4] / k[3] or 0, 0
      if k[5] == 1 then
        local cap = redis.call('HMGET', S .. 'cap:' .. key, '=c', '=r')
        local least, longest = tonumber(cap[1] or '0'), tonumber(cap[2] or '0')
        if least > 0 and (concurrency == 0 or least < concurrency) then concurrency = least end
        if longest > spacing then spacing = longest end
      elseif spacing > 0 then
        local shortest = tonumber(redis.call('HGET', S .. 'cap:' .. key, '=s') or '0')
        if shortest > 0 and shortest < spacing then spacing, own = shortest, spacing end
      end
      -- An adaptive limit runs at its key's learned figure (never above its max, already in `concurrency`).
      if type(k[6]) == 'table' then
        local figure = adaptive_figure(key, k[6])
        if concurrency == 0 or figure < concurrency then concurrency = figure end
      end
      limit[i] = { concurrency, spacing, own }
      local slot = S .. 'slot:' .. key
      redis.call('ZREMRANGEBYSCORE', slot, '-inf', now)
      if concurrency > 0 and redis.call('ZCARD', slot) >= concurrency then
        wait_on(c, gid, key)
        wake_unused(i - 1)
        return nil
      end
      if spacing > 0 then
        -- GCRA: starts on a key are spaced perMs/max apart (a scoped key: the longest spacing
        -- among its live campaigns), so no window of perMs ever holds more than max and there
        -- is no burst at a window's edge.
        local tat = tonumber(redis.call('GET', S .. 'rate:' .. key) or '0')
        if own > 0 then tat = math.max(tat, tonumber(redis.call('GET', ck(c, 'rate:' .. key)) or '0')) end
        if tat > now then
          delay_group(c, gid, math.ceil(tat))
          wake_unused(i - 1)
          return nil
        end
      end
    end

    local list = ck(c, 'g:' .. gid)
    local entry = redis.call('LPOP', list)
    if not entry then
      redis.call('HDEL', gstate, gid)
      wake_unused(#keys)
      return nil
    end

    local holder = c .. '.' .. next_seq(c)
    local expiry = now + leaseMs
    -- Measured from the previous start, not from now, when the dispatcher woke a little late:
    -- lateness does not pile up (at most half a start more per window, never more). A key's
    -- first start opens its clock without slack.
    local function advance(rate, interval, perMs)
      local stored = redis.call('GET', rate)
      local tat = stored and math.max(tonumber(stored), now - interval / 2) + interval or now + interval
      redis.call('SET', rate, string.format('%.3f', tat), 'PX', math.ceil(math.max(interval, perMs)) + 1000)
    end
    for i, k in ipairs(keys) do
      redis.call('ZADD', S .. 'slot:' .. k[1], expiry, holder)
      if limit[i][2] > 0 then advance(S .. 'rate:' .. k[1], limit[i][2], k[4]) end
      if limit[i][3] > 0 then advance(ck(c, 'rate:' .. k[1]), limit[i][3], k[4]) end
    end
    redis.call('HSET', S .. 'inflight', holder, gid .. '|' .. token .. '|' .. entry)
    redis.call('ZADD', S .. 'leases', expiry, holder)
    count_later(c, 'pending', -1)
    count_later(c, 'active', 1)
    count_later(c, 'admitted', 1)
    st[3] = tonumber(st[3] or '0') + 1
    if redis.call('LLEN', list) == 0 then
      redis.call('HDEL', gstate, gid)
      return holder, entry
    end
    -- The group has more: if this pick filled one of its keys, it waits on that key now
    -- rather than being looked at again for nothing.
    for i, k in ipairs(keys) do
      if limit[i][1] > 0 and redis.call('ZCARD', S .. 'slot:' .. k[1]) >= limit[i][1] then
        wait_on(c, gid, k[1])
        return holder, entry
      end
    end
    return holder, entry, true
  end

  local out = { now, -1, reclaimed }
  local picked = 0
  local looks = 0
  -- Round robin by rotation: the campaign looked at moves from the front of the ring to the back
  -- in one command (LMOVE), and its group from the front of its ready list to the back, where
  -- they stay when they have more (the common case: one command each instead of a pop and a
  -- push); one that has not leaves from the back (LREM from the tail: the element just moved,
  -- or a few behind it that a wake-up pushed meanwhile).
  while picked < budget and looks < budget * CAPS.dispatchLooksPerPick + CAPS.dispatchExtraLooks do
    local c = redis.call('LMOVE', S .. 'ring', S .. 'ring', 'LEFT', 'RIGHT')
    if not c then break end
    -- The campaign stays in `inring` while it is looked at, so a group of it woken meanwhile
    -- (a slot freed, make_ready) does not put it on the ring a second time; it leaves the ring
    -- and `inring` below unless it stays.
    local st = seen[c]
    if not st then
      st = redis.call('HMGET', ck(c, 'status'), 'state', 'rolloutLimit', 'admitted', 'rolloutAt', 'rolloutRest')
      seen[c] = st
    end
    -- A campaign that is not running leaves the ring with its groups as they are; resuming it
    -- puts it back. Its targets wait in Redis, costing no worker and no BullMQ place.
    -- A rollout step's targets are all admitted: the rest wait for the step to finish.
    local running = st[1] == 'running' and (not st[2] or tonumber(st[3] or '0') < tonumber(st[2]))
    local ready = ck(c, 'ready')
    local gid = running and redis.call('LMOVE', ready, ready, 'LEFT', 'RIGHT')
    local stays = false
    if gid and not step_serves(c, gid, st[4], st[5]) then
      looks = looks + 1
      redis.call('LREM', ready, -1, gid)
      park(c, gid)
    elseif gid then
      looks = looks + 1
      local holder, entry
      holder, entry, stays = try_group(c, gid, st, tokens and tokens[picked + 1] or '')
      if holder then
        out[#out + 1] = holder
        out[#out + 1] = entry
        picked = picked + 1
      end
      if not stays then redis.call('LREM', ready, -1, gid) end
    end
    if not (running and (stays or redis.call('LLEN', ready) > 0)) then
      redis.call('LREM', S .. 'ring', -1, c)
      redis.call('SREM', S .. 'inring', c)
    end
  end
  -- The step spent every look it may take without filling its picks (groups parked for a
  -- window, a later step, a delay) and campaigns with ready groups remain: it is due again at
  -- once, so groups behind many parked ones are not left for some later event. Each look moved
  -- a group out of a ready list, so this ends.
  local more = picked < budget and looks >= budget * CAPS.dispatchLooksPerPick + CAPS.dispatchExtraLooks
    and redis.call('LLEN', S .. 'ring') > 0
  if more then out[2] = now end

  -- Zones to recompute ride on the third element ('<reclaimed>\n<c>\t<zone>\n...'), so the
  -- layout finishMany-1.lua reads (the first pick at 4 and 5) is the same with or without them.
  local stale = {}
  for k in pairs(WINDOW_STALE) do stale[#stale + 1] = k end
  if #stale > 0 then out[3] = reclaimed .. '\n' .. table.concat(stale, '\n') end

  if maintain then
    local nextWake = -1
    for _, z in ipairs({ 'leases', 'retry', 'delayed' }) do
      local first = redis.call('ZRANGE', S .. z, 0, 0, 'WITHSCORES')
      if first[2] then
        local at = tonumber(first[2])
        if nextWake < 0 or at < nextWake then nextWake = at end
      end
    end
    out[2] = more and now or nextWake
  end
  return out
end
