--[[
  meta: a campaign's meta hash (<p>:campaign:<c>:meta, see keys.lua) and what is read from it.
  Provides: meta_key, meta_get, next_seq, pause_of, target_key. Needs: keys.

  A campaign written by a version before :meta existed keeps its meta fields in :groups beside
  its group entries, and is served from there for its whole life (read-through: nothing is
  moved, so scripts of the earlier version still running during an upgrade agree with these on
  where the campaign's holder counter lives). Every meta read asks for 'conn' too, which every
  campaign's meta has, to tell which hash holds it without an extra command; the answer is kept
  for the rest of the call.
]]
-- @include "keys"
local meta_home = {}

-- The hash holding the campaign's meta, for a write.
local function meta_key(c)
  local home = meta_home[c]
  if home then return home end
  home = ck(c, 'meta')
  if redis.call('HEXISTS', home, 'conn') == 0 and redis.call('HEXISTS', ck(c, 'groups'), 'conn') == 1 then
    home = ck(c, 'groups')
  end
  meta_home[c] = home
  return home
end

-- The campaign's meta fields asked for, in order (false where unset).
local function meta_get(c, ...)
  local home = meta_home[c]
  if home then return redis.call('HMGET', home, ...) end
  local v = redis.call('HMGET', ck(c, 'meta'), 'conn', ...)
  if v[1] then
    meta_home[c] = ck(c, 'meta')
  else
    local legacy = redis.call('HMGET', ck(c, 'groups'), 'conn', ...)
    if legacy[1] then
      meta_home[c] = ck(c, 'groups')
      v = legacy
    end
  end
  table.remove(v, 1)
  return v
end

-- The next number of the campaign's holder counter: a holder's name, and a record's seq
-- (holder_seq, keys.lua).
local function next_seq(c)
  return redis.call('HINCRBY', meta_key(c), 'seq', 1)
end

-- When the Retry-After pause on the campaign's connection ends (0: never paused; paused only
-- while it is ahead of now), the connection, and the campaign's window zone ('sched': its one
-- zone, '*' for each group's own, false without a schedule), read in the same command.
local function pause_of(c)
  local m = meta_get(c, 'conn', 'sched')
  return tonumber(redis.call('HGET', S .. 'pause', m[1]) or '0'), m[1], m[2]
end

-- A target's key from its JSON, as the operation's `targetKey` computes it: the id field, and
-- '@<version>' when the operation has a version field and the target sets it.
-- A campaign's target key fields never change: read and decoded once per script call, which
-- may claim many of its targets (finishMany-1.lua).
local tk_fields = {}

local function target_key(c, entry)
  local fields = tk_fields[c]
  if not fields then
    fields = cjson.decode(meta_get(c, 'tk')[1])
    tk_fields[c] = fields
  end
  local t = cjson.decode(entry)
  local key = tostring(t[fields[1]])
  if fields[2] and t[fields[2]] ~= nil then key = key .. '@' .. tostring(t[fields[2]]) end
  return key, t
end
