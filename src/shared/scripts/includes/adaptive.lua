--[[
  adaptive: a key value's adaptive concurrency (a limit's `concurrency: {adaptive: {min, max,
  initial}}`), moved by the calls that end on it and read by dispatch as the key's concurrency.
  Provides: adaptive_figure, adapt, adapt_unanswered. Needs: keys, caps.

  State, global to every worker: <p>:sched:adapt:<key> HASH
    'c'    the figure (a float: proportional cuts and sqrt steps add up; dispatch uses its floor)
    'base' the no-load latency, ms: the lowest round minimum seen. It goes up only on evidence
           that a latency is the platform's own (a cut that did not help, or the figure at `min`),
           so a platform that got slower for good is re-learnt, but a queue the figure itself
           causes is never taken for the platform's speed (it would then never be cut)
    'n', 'min', 'sum'  the current round: calls counted, the fastest of them, and their latencies
           added up (each at most at the sure-rise line), ms
    'ah', 'ar'  the current round's calls above the hold line and above the rise line
    'q'    '1' when the last round was queued
    'ss'   '0' once slow start has ended (absent: still in it)
    'cut'  when the figure was last cut (Redis clock, ms)
    'skip' answers still owed by calls in flight at the last cut (sent under the old figure)
    'top'  the figure that drew the last overload answer (absent: none, or forgotten)
    'topAt'  when that answer came (Redis clock, ms): `top` is forgotten
           CAPS.adaptiveOverloadMemoryMs after it
    'pre'  after a latency cut, until the next round checks it: the figure before the cut
  It outlives the campaigns using the key (the next one starts from what was learned) and
  expires after CAPS.adaptiveIdleMs without a call ending on the key. No round trip of its own:
  the scripts that end a call (finish, retryLater, throttle) pass the call's latency and whether
  it was an overload answer (429, 503, a timeout), and update it here in the same step.

  The rule (after TCP Vegas, HyStart and LEDBAT's base delay, and Netflix's Gradient2): calls are
  counted in rounds of `figure` (at least adaptiveRoundMinCalls), about one answer per call in
  flight. Against base, three lines: hold = base x adaptiveHoldRatio + adaptiveSlackMs, rise =
  base x adaptiveRiseRatio + slack, sure = base x adaptiveSureRiseRatio + slack.
  A round votes by its MEDIAN call (more than half its calls above a line), and its fastest call
  sets the base. Both, because the calls of a round are not sent at the same load: the figure
  counts slots, and a slot also holds a call while a worker handles its answer and sends the
  next, so the calls really in flight at the platform dip and swell within a round. The fastest
  call comes from a dip: it stays near the no-load latency (it is the platform's latency plus the
  least of the workers' own noise, which only ever adds: the base) even at 1.5 x the capacity,
  where most calls queue. The median follows the load; the workers' noise moves it a little,
  hence the slack and the second round asked for below.
  - median <= hold (unqueued), with the key using at least half its figure (a key held back by
    something else learns nothing about a higher one: the tail of a campaign must not push it to
    max): up, x adaptiveSlowStartFactor in slow start, + sqrt(figure) after it (quick while far
    from the capacity, finer near it), but not past adaptiveOverloadMargin x `top`: an overload
    answer costs a retry (with Retry-After, a pause of the whole connection), so the figure that
    drew one is not probed again soon
    (`top` rises 1/adaptiveOverloadDriftRounds per round spent at the margin, and is forgotten
    adaptiveOverloadMemoryMs after the overload: a platform that grew is found again).
  - hold < median <= rise: held (the platform queues a little: the figure is where it should
    be). Slow start, which could overshoot by half, ends here.
  - median > rise (queued): a second queued round in a row cuts (one alone may be a stall of the
    workers), or this one at once when even its fastest call is past sure (a stall that slows
    every call of a round that much is unlikely; a halved capacity does). Above its capacity a
    platform's latency grows with the calls in flight, so it answers about figure x base / mean
    latency of them unqueued: the cut lands at adaptiveRiseDecreaseFactor of that (never below
    adaptiveRiseDecreaseMin x the figure), under the capacity, so the queue drains and the climb
    finds the capacity again from below. (That estimate counts slots, and a slot also holds a
    call while its worker handles the answer and sends the next: it is above the platform's
    own capacity, hence a factor well under 1.) A call counts in that mean at most at the sure line: a
    stalled call does not deepen the cut.
    The round after a cut checks it instead of voting: the cut took the figure under what the
    platform answers unqueued, so a queue of ours is gone. A median still above rise means the
    latency was not ours: the platform got slower (its fastest call, made under the cut, is the
    new base) or the workers stalled (the next faster round takes the base back down); the
    figure goes back to where it was (short of the overload margin).
  - An overload answer (429, 503, timeout): figure x adaptiveDecreaseFactor at once. One with
    Retry-After (throttle-1.lua: the whole connection pauses) also restarts the climb: x
    adaptiveRetryAfterRestartFactor more, in slow start (still under the overload margin). At
    the pause's end nothing is in flight, and the key would start its whole cut figure at once
    with no latency to warn first: a platform that shrank, or whose 429 came far over its
    capacity, would answer a second 429 and a second pause. Slow start gets back to the cut
    figure within a round or two, and a latency rise on the way cuts before anything is shed.
  Only calls that started after the last cut count: the others were sent under the old figure,
  and a burst of them answered together is one signal, not one per call. When a call started is
  an estimate (Redis now minus the latency the worker measured, which misses the time between
  the answer and this script, and a 429 shed at once takes 0 ms), so a cut also notes the calls
  then in flight on the key ('skip'), and that many answers after it count for nothing. A cut
  ends slow start (a Retry-After's restarts it).
  The figure stays under the finishing campaign's max and the key's (adaptive_bounds), and its
  cuts stop at the campaign's min. The campaign's status shows 'limit:<key>' as dispatch applies
  it to that campaign.
]]
-- @include "keys"
-- @include "caps"

-- The figure dispatch applies on a key whose group limit carries `a` = [min, max, initial].
local function adaptive_figure(key, a)
  local f = tonumber(redis.call('HGET', S .. 'adapt:' .. key, 'c')) or a[3]
  return math.max(a[1], math.min(a[2], math.floor(f)))
end

-- A call on the keys that will never answer (its run gave its target back unsent,
-- giveBack-1.lua): the last cut counted it among the answers to pass over ('skip'); it leaves
-- that count, or the first answers after it (a 429 among them) would be passed over in its place.
local function adapt_unanswered(keys)
  for _, k in ipairs(keys) do
    if type(k[6]) == 'table' then
      local state = S .. 'adapt:' .. k[1]
      if tonumber(redis.call('HGET', state, 'skip') or '0') > 0 then redis.call('HINCRBY', state, 'skip', -1) end
    end
  end
end

-- The bounds a call of a campaign with adaptive limit `a` on key `k` (its group table entry)
-- keeps the shared figure `was` in. The strictest max wins, as with fixed figures (a scoped key's
-- '=c', the smallest max among its live campaigns, which dispatch applies anyway). The campaign's
-- min stops its own cuts, but lifts neither a figure above that max nor one another campaign's
-- calls took lower (dispatch reads it at this campaign's min anyway): two campaigns with
-- disjoint ranges on one key would otherwise drag it from one range to the other at every call.
local function adaptive_bounds(k, a, was)
  local hi = a[2]
  if k[2] > 0 and k[2] < hi then hi = k[2] end
  if k[5] == 1 then
    local least = tonumber(redis.call('HGET', S .. 'cap:' .. k[1], '=c') or '0')
    if least > 0 and least < hi then hi = least end
  end
  local lo = math.min(a[1], hi)
  if was < lo then lo = math.max(1, was) end
  return lo, hi
end

-- Adds the fields `k1` (and `k2`) to the HSET `fields` while `v1` holds a value; once it does
-- not, drops them from `state`, only if they were there (`had`): no HDEL on every call.
local function put_or_drop(state, fields, had, k1, v1, k2, v2)
  if v1 ~= nil then
    fields[#fields + 1] = k1; fields[#fields + 1] = v1
    if k2 then fields[#fields + 1] = k2; fields[#fields + 1] = v2 end
  elseif had then
    redis.call('HDEL', state, k1, k2 or k1)
  end
end

-- A call of campaign `c` on a group with limit keys `keys` ended after `callMs` (ms, as the
-- worker measured it); `overload` is true for a 429, a 503 or a timeout, `paused` when that
-- answer paused the connection (Retry-After, throttle-1.lua). The campaign's status hash shows
-- each adaptive key's figure as 'limit:<key>'.
local function adapt(c, keys, callMs, overload, now, paused)
  for _, k in ipairs(keys) do
    local a = k[6]
    if type(a) == 'table' then
      local state = S .. 'adapt:' .. k[1]
      local v = redis.call('HMGET', state, 'c', 'base', 'ss', 'cut', 'n', 'min', 'q', 'top', 'pre', 'sum', 'skip', 'topAt', 'ah', 'ar')
      local lo, hi = adaptive_bounds(k, a, tonumber(v[1]) or a[3])
      local figure = tonumber(v[1]) or a[3]
      local base = tonumber(v[2])
      local slow, cut = v[3] ~= '0', tonumber(v[4]) or 0
      local n, least, queued = tonumber(v[5]) or 0, tonumber(v[6]), v[7] == '1'
      local top, pre = tonumber(v[8]), tonumber(v[9])
      local sum, above_hold, above_rise = tonumber(v[10]) or 0, tonumber(v[13]) or 0, tonumber(v[14]) or 0
      local skip = tonumber(v[11]) or 0
      -- State from before 'topAt' was kept: the overload came at the last cut or before.
      local topAt = tonumber(v[12]) or cut
      -- Redis's clock stepped back (a failover to another host): no call would count until it
      -- caught up with the old cut.
      if cut > now then cut = now end
      -- An overload long past says little of today's platform: the climb may probe past it again.
      if top and now - topAt >= CAPS.adaptiveOverloadMemoryMs then top = nil end
      -- Answers to calls sent before the last cut were sent under the old figure: already acted on.
      if skip > 0 then
        skip = skip - 1
      elseif now - callMs >= cut then
        if overload then
          -- A 429 shed at once says nothing of the platform's speed: the round goes on without it.
          top, topAt = figure, now
          figure = figure * CAPS.adaptiveDecreaseFactor
          cut, slow, queued, pre = now, false, false, nil
          -- The connection pauses: its end starts from under the cut, in slow start.
          if paused then figure, slow = figure * CAPS.adaptiveRetryAfterRestartFactor, true end
          n, least, sum, above_hold, above_rise = 0, nil, 0, 0, 0
          -- The caller released this call's slot already: the others were all sent before the cut.
          skip = redis.call('ZCARD', S .. 'slot:' .. k[1])
        else
          n = n + 1
          if least == nil or callMs < least then least = callMs end
          if base == nil then
            sum = sum + callMs
          else
            -- The mean that sizes a cut: a call stalled far past the sure-rise line counts as on it.
            sum = sum + math.min(callMs, base * CAPS.adaptiveSureRiseRatio + CAPS.adaptiveSlackMs)
            if callMs > base * CAPS.adaptiveHoldRatio + CAPS.adaptiveSlackMs then above_hold = above_hold + 1 end
            if callMs > base * CAPS.adaptiveRiseRatio + CAPS.adaptiveSlackMs then above_rise = above_rise + 1 end
          end
          -- A round: about one call per slot, so about one answer from each call in flight.
          if n >= math.max(CAPS.adaptiveRoundMinCalls, math.floor(figure)) then
            -- The base only goes down, but at the floor (nothing lower to compare with: the
            -- latency is the platform's own) and after a cut that did not help (below): a round
            -- above it is read as a queue of ours, never re-learnt as the platform's speed.
            if base == nil or least < base or figure <= lo then base = least end
            -- The round's median call against the lines: more than half its calls above one.
            local over_hold, over_rise = above_hold * 2 > n, above_rise * 2 > n
            if pre ~= nil then
              -- The first round after a latency cut checks it: the cut landed under what the
              -- platform answers unqueued, so a queue of ours is gone. One that stayed was not
              -- ours: the platform got slower (its new latency is this round's fastest call,
              -- made under the cut) or the workers stalled (the next faster round takes the
              -- base back down). The figure goes back to where it was, short of any overload
              -- margin.
              if over_rise then
                if least > base then base = least end
                local back = pre
                if top then back = math.min(back, top * CAPS.adaptiveOverloadMargin) end
                figure = math.max(figure, back)
              end
              pre = nil
            elseif over_rise then
              -- A queued round cuts when the one before was queued too (a stall of the workers'
              -- own, their latency including their event loop, can delay a whole round), or at
              -- once when even its fastest call is too far up for a stall to be likely.
              if queued or least > base * CAPS.adaptiveSureRiseRatio + CAPS.adaptiveSlackMs then
                -- Above its capacity a platform's latency grows with the calls in flight: it
                -- answers about figure x base / the round's mean latency unqueued. The cut lands
                -- under that, so the queue built meanwhile drains and the climb finds the
                -- capacity again from below.
                pre = figure
                figure = figure * math.max(CAPS.adaptiveRiseDecreaseMin, CAPS.adaptiveRiseDecreaseFactor * base * n / sum)
                cut, slow, queued = now, false, false
                skip = redis.call('ZCARD', S .. 'slot:' .. k[1])
              else
                queued = true
              end
            elseif over_hold then
              -- The platform started queueing: slow start, which could overshoot by half, is over.
              queued, slow = false, false
            -- The caller released this call's slot already: +1 counts it.
            elseif (redis.call('ZCARD', S .. 'slot:' .. k[1]) + 1) * 2 >= math.floor(figure) then
              queued = false
              local was = figure
              if slow then figure = figure * CAPS.adaptiveSlowStartFactor else figure = figure + math.sqrt(figure) end
              -- An overload answer costs a retry (and a Retry-After, a pause of the whole
              -- connection): the climb stops short of the figure that drew the last one, which
              -- rises slowly so a platform that grew is found again.
              if top then
                local ceiling = top * CAPS.adaptiveOverloadMargin
                if figure >= ceiling then
                  figure = math.max(ceiling, was) -- never lowered by it: cuts do that
                  top = top + top / CAPS.adaptiveOverloadDriftRounds
                end
              end
            else
              queued = false
            end
            n, least, sum, above_hold, above_rise = 0, nil, 0, 0, 0
          end
        end
      end
      figure = math.max(lo, math.min(hi, figure))
      local fields = {
        'c', figure, 'cut', cut, 'ss', slow and '1' or '0', 'n', n, 'q', queued and '1' or '0', 'skip', skip,
        'sum', sum, 'ah', above_hold, 'ar', above_rise,
      }
      put_or_drop(state, fields, false, 'base', base)
      put_or_drop(state, fields, v[8], 'top', top, 'topAt', topAt)
      put_or_drop(state, fields, v[9], 'pre', pre)
      put_or_drop(state, fields, v[6], 'min', least)
      redis.call('HSET', state, unpack(fields))
      redis.call('PEXPIRE', state, CAPS.adaptiveIdleMs)
      -- What dispatch applies for this campaign (its read of the figure, within the key's max).
      local applied = tostring(math.min(hi, math.max(a[1], math.floor(figure))))
      redis.call('HSET', ck(c, 'status'), 'limit:' .. k[1], applied)
    end
  end
end
