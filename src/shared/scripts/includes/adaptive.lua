--[[
  adaptive: a key value's adaptive concurrency (a limit's `concurrency: {adaptive: {min, max,
  initial}}`), moved by the calls that end on it and read by dispatch as the key's concurrency.
  Provides: adaptive_figure, adapt. Needs: keys, caps.

  State, global to every worker: <p>:sched:adapt:<key> HASH
    'c'    the figure (a float: the fractional steps add up; dispatch uses its floor)
    'avg'  the recent latency, ms: an EWMA over about adaptiveLatencyCalls calls, so one slow
           answer (a worker's event loop stalling, say) moves it a little, not past a threshold
    'base' the no-load latency, ms: the lowest `avg` seen, drifting up 1/adaptiveBaseDriftCalls
           of the way toward `avg` per call (and all the way at `min`), so a platform that got
           slower for good is re-learnt rather than read as overloaded forever
    'ss'   '0' once slow start has ended (absent: still in it)
    'cut'  when the figure was last cut (Redis clock, ms)
  It outlives the campaigns using the key (the next one starts from what was learned) and
  expires after CAPS.adaptiveIdleMs without a call ending on the key. No round trip of its own:
  the scripts that end a call (finish, retryLater, throttle) pass the call's latency and whether
  it was an overload answer (429, 503, a timeout), and update it here in the same step.

  The rule (latency-targeted, after TCP Vegas and Netflix's Gradient2), per call:
  - `avg` at most adaptiveHoldRatio x base + adaptiveSlackMs (no queue at the platform yet), and
    the key using at least half its figure (a key held back by something else learns nothing
    about a higher one: the tail of a campaign must not push it to max): up. In slow start by
    adaptiveSlowStartGain per call (x 1.5 per round of calls at 0.5), after it by 1/sqrt(figure)
    per call (+ sqrt(figure) per round: quick while far from the capacity, finer near it).
  - `avg` between that and adaptiveRiseRatio x base + slack: held (the platform queues a little:
    the figure is where it should be). Slow start ends here, before anything was shed.
  - `avg` above it: cut in proportion, figure x (hold line / avg), never by more than half.
  - An overload answer: figure x adaptiveDecreaseFactor.
  Only calls that started after the last cut may cut again: the others were sent under the old
  figure, and a burst of them answered together is one signal, not one per call. A cut ends
  slow start. The figure stays within the finishing campaign's [min, max].
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
      local v = redis.call('HMGET', state, 'c', 'avg', 'base', 'ss', 'cut', 'n', 'lo', 'hi', 'sum', 'q')
      local lo, hi = a[1], a[2]
      local figure = tonumber(v[1]) or a[3]
      local avg, base = tonumber(v[2]), tonumber(v[3])
      local slow = v[4] ~= '0'
      local cut = tonumber(v[5]) or 0
      local n, nlo, nhi, sum = tonumber(v[6]) or 0, tonumber(v[7]) or 0, tonumber(v[8]) or 0, tonumber(v[9]) or 0
      local queued = v[10] == '1'
      -- Answers to calls sent before the last cut were sent under the old figure: already acted on.
      local fresh = now - callMs >= cut
      if overload then
        -- A 429 shed at once says nothing of the platform's speed: latency state untouched.
        if fresh then
          figure = figure * CAPS.adaptiveDecreaseFactor
          cut, slow, queued, n, nlo, nhi, sum = now, false, false, 0, 0, 0, 0
        end
      else
        if avg == nil then avg = callMs else avg = avg + (callMs - avg) / CAPS.adaptiveLatencyCalls end
        if base == nil or avg < base or figure <= lo then
          -- At the floor the latency is the platform's own: nothing lower to compare it with.
          base = avg
        else
          base = base + (avg - base) / CAPS.adaptiveBaseDriftCalls
        end
        if fresh then
          local hold = base * CAPS.adaptiveHoldRatio + CAPS.adaptiveSlackMs
          n, sum = n + 1, sum + callMs
          if callMs <= hold then nlo = nlo + 1 elseif callMs > base * CAPS.adaptiveRiseRatio + CAPS.adaptiveSlackMs then nhi = nhi + 1 end
          -- A round: about one call per slot, so about one answer from each call in flight.
          if n >= math.max(CAPS.adaptiveRoundMinCalls, math.floor(figure)) then
            if nhi * 2 > n then
              -- A queued round cuts only when the one before was queued too: a stall of the
              -- workers' own (their latency includes their event loop) delays a round of answers.
              if queued then
                figure = figure * math.max(CAPS.adaptiveRiseDecreaseFactor, hold * n / sum)
                cut, slow, queued = now, false, false
              else
                queued = true
              end
            elseif nlo * 2 <= n then
              queued = false
            -- The caller released this call's slot already: +1 counts it.
            elseif (redis.call('ZCARD', S .. 'slot:' .. k[1]) + 1) * 2 >= math.floor(figure) then
              queued = false
              if slow then figure = figure * CAPS.adaptiveSlowStartFactor else figure = figure + math.sqrt(figure) end
            end
            n, nlo, nhi, sum = 0, 0, 0, 0
          end
        end
      end
      figure = math.max(lo, math.min(hi, figure))
      local fields = { 'c', figure, 'cut', cut, 'ss', slow and '1' or '0', 'n', n, 'lo', nlo, 'hi', nhi, 'sum', sum, 'q', queued and '1' or '0' }
      if avg then
        fields[#fields + 1] = 'avg'; fields[#fields + 1] = avg
        fields[#fields + 1] = 'base'; fields[#fields + 1] = base
      end
      redis.call('HSET', state, unpack(fields))
      redis.call('PEXPIRE', state, CAPS.adaptiveIdleMs)
      redis.call('HSET', ck(c, 'status'), 'limit:' .. k[1], math.floor(figure))
    end
  end
end
