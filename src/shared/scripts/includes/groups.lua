--[[
  groups: where a campaign's groups wait to run, and the ring of campaigns with ready groups.
  Provides: group_keys, ring_push, back_on_ring, unpark_window, make_ready, delay_group,
  ensure_scheduled, wait_on.
  Needs: keys.
]]
-- @include "keys"

-- A group's limit keys: [[key, concurrency, rateMax, ratePerMs, scope], ...]. Read and decoded
-- once per script call (callers only read the table): no script writes :groups (the producer
-- does, before the group has targets), and the hot path asks for the same group's keys at a run's
-- release, its adaptive sample and the next pick (finishMany-1.lua).
local group_keys_read = {}
local function group_keys(c, gid)
  local id = c .. '|' .. gid
  local keys = group_keys_read[id]
  if keys then return keys end
  local json = redis.call('HGET', ck(c, 'groups'), gid)
  keys = json and cjson.decode(json) or {}
  group_keys_read[id] = keys
  return keys
end

-- Puts the campaign at the back of the round robin unless it is on it already.
local function ring_push(c)
  if redis.call('SADD', S .. 'inring', c) == 1 then
    redis.call('RPUSH', S .. 'ring', c)
  end
end

-- Puts a campaign whose ready list has groups back in the round robin.
local function back_on_ring(c)
  if redis.call('LLEN', ck(c, 'ready')) > 0 then ring_push(c) end
end

-- A group leaves its wait for a maintenance window (gid -> n in :winpark, includes/windows.lua):
-- the n targets it was counted with leave the status hash's waitingForWindow. Returns whether it
-- was waiting for one.
local function unpark_window(c, gid)
  local winpark = ck(c, 'winpark')
  local n = redis.call('HGET', winpark, gid)
  if not n then return false end
  redis.call('HDEL', winpark, gid)
  local status = ck(c, 'status')
  if redis.call('HINCRBY', status, 'waitingForWindow', -tonumber(n)) <= 0 then
    redis.call('HSET', status, 'waitingForWindow', 0)
    redis.call('HDEL', status, 'nextWindowAt')
  end
  return true
end

-- Puts a group in its campaign's ready list (and the campaign on the ring), from whatever it
-- waited in: blocked, delayed or idle. A group already ready is left where it is. Returns
-- whether it waited for its maintenance window.
local function make_ready(c, gid)
  local gstate = ck(c, 'gstate')
  local was = redis.call('HGET', gstate, gid)
  if was == 'r' then return false end
  local windowed = was == 'd' and unpark_window(c, gid)
  redis.call('HSET', gstate, gid, 'r')
  redis.call('RPUSH', ck(c, 'ready'), gid)
  ring_push(c)
  return windowed
end

-- A group waits in sched:delayed until `at` (gstate 'd'): a rate clock, a Retry-After pause or
-- a maintenance window. The dispatch step's housekeeping makes it ready when `at` passes.
local function delay_group(c, gid, at)
  redis.call('HSET', ck(c, 'gstate'), gid, 'd')
  redis.call('ZADD', S .. 'delayed', at, c .. '|' .. gid)
end

-- A group that still has pending entries but is in no structure gets put somewhere.
-- Its one caller (requeue, slots.lua) has just pushed one entry back: in a group waiting for
-- its maintenance window (:winpark), that entry is counted with the group's.
local function ensure_scheduled(c, gid, wakeAt, now)
  local was = redis.call('HGET', ck(c, 'gstate'), gid)
  if was then
    if was == 'd' and redis.call('HEXISTS', ck(c, 'winpark'), gid) == 1 then
      redis.call('HINCRBY', ck(c, 'winpark'), gid, 1)
      redis.call('HINCRBY', ck(c, 'status'), 'waitingForWindow', 1)
    end
    return
  end
  if wakeAt > now then
    delay_group(c, gid, wakeAt)
  else
    make_ready(c, gid)
  end
end

-- A group waits for a slot on a full key: at the back of its campaign's groups waiting there,
-- and its campaign at the back of the key's campaigns unless it is in that queue already.
local function wait_on(c, gid, key)
  redis.call('HSET', ck(c, 'gstate'), gid, 'b')
  if redis.call('RPUSH', ck(c, 'w:' .. key), gid) == 1 then
    redis.call('RPUSH', S .. 'waiting:' .. key, c)
  end
end
