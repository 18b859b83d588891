--[[
  A run's next platform call is held by its connection's Retry-After pause, and its campaign has
  an adaptive limit: the run gives its target back if one of its keys holds more slots than the
  key's adaptive figure now allows (the overload answer that drew the pause cut it). Otherwise
  every held run would leave together at the pause's end, as many as the figure was before the
  cut, and overload the platform that just asked for less (a second 429 and a second pause).
  The target goes back to the head of its group to wake at the pause's end, as a claim on a
  paused connection puts it (claim-1.lua): dispatch then admits on the key only up to its figure.
  Runs within the figure keep their slots and leave at the pause's end, as before. The run has
  sent nothing since the pause (its call is held at the gate), so giving it back recalls no call.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] scheduler caps (includes/caps.lua)
    ARGV[3] holder
    ARGV[4] run token

  Output:
    { PAUSED, until }  given back: the target went back to the head of its group, to wake at
                       the pause's end; the run stops without sending
    { KEPT }           the run keeps its slots (the keys are within their figures, or the pause
                       is over): it waits out the pause and sends
    { LOST }           the run no longer holds the target (its lease was lost): it must not send
]]
-- @include "keys"
-- @include "meta"
-- @include "slots"
-- @include "adaptive"

local holder, token = ARGV[3], ARGV[4]
local v = redis.call('HGET', S .. 'inflight', holder)
if not v then return { CODES.LOST } end
local gid, held, entry = parse_inflight(v)
if held ~= token then return { CODES.LOST } end

local c = campaign_of(holder)
local now = now_ms()
local pausedUntil = pause_of(c)
if pausedUntil <= now then return { CODES.KEPT } end

local over = false
for _, k in ipairs(group_keys(c, gid)) do
  if type(k[6]) == 'table' then
    -- Live slots only: an expired lease's slot is the reclaim's to free, and holds no call.
    local used = redis.call('ZCOUNT', S .. 'slot:' .. k[1], '(' .. now, '+inf')
    if used > adaptive_figure(k[1], k[6]) then
      over = true
      break
    end
  end
end
if not over then return { CODES.KEPT } end

adapt_unanswered(group_keys(c, gid))
release(holder, v)
requeue(c, gid, entry, pausedUntil, now)
return { CODES.PAUSED, pausedUntil }
