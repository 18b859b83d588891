--[[
  limits: capacity records, each key's figures across the live campaigns using it.
  Provides: use_limits, drop_limits. Needs: keys, groups.

  A scoped key value (the connection's own, `<connection>/<value>`) may be used by several
  campaigns on the connection, each with its own figures: the key holds the smallest
  concurrency and the longest spacing between starts among the live ones, so no campaign runs
  it past what another promised the platform. `<p>:sched:cap:<key>` keeps each live campaign's
  figures and, in '=c' / '=r', the strictest, which is all a dispatch reads. Written when a
  campaign starts using a group (commit, a discovered page, an operator's retry) and taken back
  when it ends (complete_if_done), so an ended campaign's figure stops counting. A registry key
  (not scoped) holds the registry's figures, which no campaign can raise (they are clipped at
  enqueue) nor lower for others: a campaign's lower concurrency only keeps its own targets from
  starting (the check compares the slots with its own figure), and a lower rate runs on a clock
  of the campaign's own, while the key's clock is spaced by '=s', the shortest spacing among the
  live campaigns with a rate on it (the registry's).
]]
-- @include "keys"
-- @include "groups"

local function parse_figures(v)
  local conc, spacing = string.match(v, '^([^|]*)|(.*)$')
  return tonumber(conc) or 0, tonumber(spacing) or 0
end

-- Merges a campaign's figures on a key into the key's record (a campaign only ever tightens its
-- own entry while it lives) and the summaries with it.
local function use_figures(c, key, f)
  local cap = S .. 'cap:' .. key
  local mine = redis.call('HGET', cap, c)
  if mine then
    local conc, spacing = parse_figures(mine)
    if conc > 0 and (f[1] == 0 or conc < f[1]) then f[1] = conc end
    if spacing > f[2] then f[2] = spacing end
  end
  redis.call('HSET', cap, c, f[1] .. '|' .. f[2])
  local now = redis.call('HMGET', cap, '=c', '=r', '=s')
  if f[1] > 0 and (not now[1] or f[1] < tonumber(now[1])) then redis.call('HSET', cap, '=c', f[1]) end
  if f[2] > 0 and (not now[2] or f[2] > tonumber(now[2])) then redis.call('HSET', cap, '=r', f[2]) end
  if f[2] > 0 and (not now[3] or f[2] < tonumber(now[3])) then redis.call('HSET', cap, '=s', f[2]) end
end

-- Members per SADD: unpack's arguments go on Lua's C stack, which holds a few thousand.
local SADD_CHUNK = 1000

-- The campaign uses these groups: its figures go into the records of their keys (a registry
-- key's: its rate only), and every key it has a figure on or may wait for is listed for its end.
local function use_limits(c, gids)
  local figures, listed, order = {}, {}, {}
  for _, gid in ipairs(gids) do
    for _, k in ipairs(group_keys(c, gid)) do
      local key = k[1]
      if k[5] == 1 or k[2] > 0 or k[3] > 0 then
        if not listed[key] then
          listed[key] = true
          order[#order + 1] = key
        end
      end
      if k[5] == 1 or k[3] > 0 then
        local f = figures[key] or { 0, 0 }
        figures[key] = f
        if k[5] == 1 and k[2] > 0 and (f[1] == 0 or k[2] < f[1]) then f[1] = k[2] end
        if k[3] > 0 and k[4] / k[3] > f[2] then f[2] = k[4] / k[3] end
      end
    end
  end
  for i = 1, #order, SADD_CHUNK do
    redis.call('SADD', ck(c, 'limitkeys'), unpack(order, i, math.min(i + SADD_CHUNK - 1, #order)))
  end
  for _, key in ipairs(order) do
    local f = figures[key]
    if f then use_figures(c, key, f) end
  end
end

-- The campaign ended: its figures leave every record (the strictest is worked out again from
-- the campaigns left), and its waiting lists go.
local function drop_limits(c)
  local listed = ck(c, 'limitkeys')
  for _, key in ipairs(redis.call('SMEMBERS', listed)) do
    local cap = S .. 'cap:' .. key
    if redis.call('HDEL', cap, c) == 1 then
      local all = redis.call('HGETALL', cap)
      local conc, longest, shortest, users = 0, 0, 0, 0
      for i = 1, #all, 2 do
        if string.sub(all[i], 1, 1) ~= '=' then
          users = users + 1
          local fc, fs = parse_figures(all[i + 1])
          if fc > 0 and (conc == 0 or fc < conc) then conc = fc end
          if fs > longest then longest = fs end
          if fs > 0 and (shortest == 0 or fs < shortest) then shortest = fs end
        end
      end
      if users == 0 then
        redis.call('DEL', cap)
      else
        if conc > 0 then redis.call('HSET', cap, '=c', conc) else redis.call('HDEL', cap, '=c') end
        if longest > 0 then redis.call('HSET', cap, '=r', longest, '=s', shortest) else redis.call('HDEL', cap, '=r', '=s') end
      end
    end
    -- The campaign is in the key's queue exactly while it has this list.
    if redis.call('DEL', ck(c, 'w:' .. key)) == 1 then
      redis.call('LREM', S .. 'waiting:' .. key, 0, c)
    end
  end
  redis.call('DEL', listed)
end
