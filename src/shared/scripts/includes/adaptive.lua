--[[
  adaptive: a key value's adaptive concurrency (a limit's `concurrency: {adaptive: {min, max,
  initial}}`), moved by the calls that end on it and read by dispatch as the key's concurrency.
  Provides: adaptive_figure, adapt. Needs: keys, caps.

  State, global to every worker: <p>:sched:adapt:<key> HASH
    'c'    the figure (a float: halving and +1 steps are kept exact; dispatch uses its floor)
    'best' the best call latency seen, ms (drifts up slowly: a platform that got slower for good
           is not read as overloaded forever)
    'n'    calls near the best latency since the figure last moved
    'cut'  when the figure was last cut (Redis clock, ms)
  It outlives the campaigns using the key (the next one starts from what was learned) and
  expires after CAPS.adaptiveIdleMs without a call ending on the key. No round trip of its own:
  the scripts that end a call (finish, retryLater, throttle) pass the call's latency and whether
  it was an overload answer (429, 503, a timeout), and update it here in the same step.

  AIMD: a window of `figure` calls near the best latency (within adaptiveNearRatio x best +
  adaptiveSlackMs), each ending while the key's slots were full, raises it by 1 (a key that is
  not using its figure learns nothing about a higher one: the tail of a campaign must not push it
  to max); an overload answer or a latency above adaptiveRiseRatio x best
  + adaptiveSlackMs multiplies it by adaptiveDecreaseFactor. Calls in between hold it. Only calls
  that started after the last cut may cut again: the others were sent under the old figure, and
  a burst of them answered together is one signal, not one per call.
]]
-- @include "keys"
-- @include "caps"

-- The figure dispatch applies on a key whose group limit carries `a` = [min, max, initial].
local function adaptive_figure(key, a)
  local f = tonumber(redis.call('HGET', S .. 'adapt:' .. key, 'c')) or a[3]
  return math.max(a[1], math.min(a[2], math.floor(f)))
end

-- A call of campaign `c` on a group with limit keys `keys` ended after `callMs` (ms, as the
-- worker measured it); `overload` is true for a 429, a 503 or a timeout. The campaign's status
-- hash shows each adaptive key's figure as 'limit:<key>'.
local function adapt(c, keys, callMs, overload, now)
  for _, k in ipairs(keys) do
    local a = k[6]
    if type(a) == 'table' then
      local state = S .. 'adapt:' .. k[1]
      local v = redis.call('HMGET', state, 'c', 'best', 'n', 'cut')
      local lo, hi = a[1], a[2]
      local figure = tonumber(v[1]) or a[3]
      -- Only answered calls set the best latency: a 429 shed at once says nothing of the platform's speed.
      local best = tonumber(v[2])
      local n = tonumber(v[3]) or 0
      local cut = tonumber(v[4]) or 0
      local rise = best ~= nil and callMs > best * CAPS.adaptiveRiseRatio + CAPS.adaptiveSlackMs
      if overload or rise then
        if now - callMs >= cut then
          figure = figure * CAPS.adaptiveDecreaseFactor
          n = 0
          cut = now
        end
      else
        if best == nil or callMs < best then best = callMs else best = best + (callMs - best) / CAPS.adaptiveBestDriftCalls end
        -- The caller released this call's slot already: +1 counts it.
        local full = redis.call('ZCARD', S .. 'slot:' .. k[1]) + 1 >= math.floor(figure)
        if full and callMs <= best * CAPS.adaptiveNearRatio + CAPS.adaptiveSlackMs then
          n = n + 1
          if n >= math.floor(figure) then
            figure = figure + 1
            n = 0
          end
        end
      end
      figure = math.max(lo, math.min(hi, figure))
      if best then
        redis.call('HSET', state, 'c', figure, 'n', n, 'cut', cut, 'best', best)
      else
        redis.call('HSET', state, 'c', figure, 'n', n, 'cut', cut)
      end
      redis.call('PEXPIRE', state, CAPS.adaptiveIdleMs)
      redis.call('HSET', ck(c, 'status'), 'limit:' .. k[1], math.floor(figure))
    end
  end
end
