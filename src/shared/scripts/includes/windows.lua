--[[
  windows: maintenance windows (README, "Maintenance windows"). Lua has no time-zone database, so
  the producer and the workers compute each zone's open interval (src/shared/windows.ts) and
  store it in <p>:campaign:<c>:win (zone -> '<from>|<until>', ms on the window clock); here it is
  only compared with the window clock, Redis's TIME + CAPS.windowClockOffsetMs (0 but in tests
  and drills), the same clock for every worker.
  Provides: WINDOW_STALE, window_gate, window_next. Needs: keys, caps, groups.
]]
-- @include "keys"
-- @include "caps"
-- @include "groups"

-- '<c>\t<zone>' -> true: zones whose stored interval has passed (or is missing). The dispatch
-- step returns them; the worker computes and stores their next interval (setWindows-1.lua) and
-- dispatches again, so no script needs the time-zone rules and nothing polls.
local WINDOW_STALE = {}

-- Whether group `gid` of campaign `c` may start now. `sched`: the campaign's :meta 'sched' (its
-- zone, or '*' for the group's own `z:<gid>` in :groups). When it may not, the group is moved
-- out of the ready list: to <p>:sched:delayed scored at its zone's next opening (on Redis's
-- clock, so the dispatcher's one timer for the next due time wakes it), gstate 'd' (what a
-- worker of any version wakes) with gid -> n in :winpark and its n targets counted in the status
-- hash's waitingForWindow; or, with a stale interval, reported
-- in WINDOW_STALE and waiting for the worker's refresh: gstate 'd' (what any worker wakes) with
-- gid -> zone in :winwait, which setWindows-1.lua makes ready when it stores the zone. Never due
-- at once (a zone a worker cannot compute would have the dispatcher loop): its delayed entry,
-- CAPS.windowRecheckMs ahead, only covers a worker lost before it stored the zone.
-- A group's zone and a zone's interval, read once per script call: a step looks at the same
-- groups again and again as it picks (nothing in a call changes them).
local window_zones, window_intervals = {}, {}

local function window_gate(c, gid, sched, now)
  local zone = sched
  if zone == '*' then
    zone = window_zones[c .. '|' .. gid]
    if zone == nil then
      zone = redis.call('HGET', ck(c, 'groups'), 'z:' .. gid)
      window_zones[c .. '|' .. gid] = zone
    end
  end
  -- A group of a per-target-zone campaign without its zone (`z:<gid>`): it fails closed, as the
  -- stale zone '' that no refresh can store (the worker logs it), never runs unchecked.
  if not zone then zone = '' end
  local offset = CAPS.windowClockOffsetMs or 0
  local wnow = now + offset
  local iv = window_intervals[c .. '\t' .. zone]
  if iv == nil then
    local v = redis.call('HGET', ck(c, 'win'), zone)
    local a, b = string.match(v or '', '^(%-?%d+)|(%-?%d+)$')
    iv = a and { tonumber(a), tonumber(b) } or false
    window_intervals[c .. '\t' .. zone] = iv
  end
  local from, till = iv and iv[1], iv and iv[2]
  if not till or wnow >= till then
    WINDOW_STALE[c .. '\t' .. zone] = true
    delay_group(c, gid, now + (CAPS.windowRecheckMs or 60000))
    redis.call('HSET', ck(c, 'winwait'), gid, zone)
    return false
  end
  if wnow >= from then return true end
  local n = redis.call('LLEN', ck(c, 'g:' .. gid))
  if n == 0 then
    redis.call('HDEL', ck(c, 'gstate'), gid)
    return false
  end
  local status = ck(c, 'status')
  -- Still counted: an earlier worker woke it (it only knows 'd') and left the count.
  local was = redis.call('HGET', ck(c, 'winpark'), gid)
  delay_group(c, gid, from - offset)
  redis.call('HSET', ck(c, 'winpark'), gid, n)
  redis.call('HINCRBY', status, 'waitingForWindow', n - tonumber(was or '0'))
  local next = tonumber(redis.call('HGET', status, 'nextWindowAt') or '0')
  if next <= wnow or from < next then redis.call('HSET', status, 'nextWindowAt', from) end
  return false
end

-- After groups of `c` woke at their window's opening: nextWindowAt becomes the earliest opening
-- still ahead among the campaign's zones (each zone's stored interval is the one its waiting
-- groups were parked for), or goes when nothing waits.
local function window_next(c, now)
  local status = ck(c, 'status')
  if tonumber(redis.call('HGET', status, 'waitingForWindow') or '0') <= 0 then
    redis.call('HDEL', status, 'nextWindowAt')
    return
  end
  local wnow = now + (CAPS.windowClockOffsetMs or 0)
  local best
  local all = redis.call('HGETALL', ck(c, 'win'))
  for i = 2, #all, 2 do
    local from = tonumber(string.match(all[i], '^(%-?%d+)|'))
    if from and from > wnow and (not best or from < best) then best = from end
  end
  if best then redis.call('HSET', status, 'nextWindowAt', best) else redis.call('HDEL', status, 'nextWindowAt') end
end
