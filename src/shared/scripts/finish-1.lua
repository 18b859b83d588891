--[[
  Record a target's outcome exactly once, count it, release the run's slots and dispatch what
  can run next, in one step: a slot frees exactly when its target's outcome is known, and the
  next target of the key takes it in the same round trip. A run whose lease was lost still
  records (the platform call happened), but releases nothing: the slots are no longer its own.
  A campaign whose status hash is gone (expired or deleted) gets its slots back and nothing
  else: no counter is written, so the hash is not brought back without its expiry.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] scheduler caps (includes/caps.lua)
    ARGV[3] holder
    ARGV[4] run token
    ARGV[5] campaign id
    ARGV[6] target key
    ARGV[7] outcome: upgraded | skipped | failed
    ARGV[8] outcome record JSON
    ARGV[9] events channel: `{"id":...,"state":"completed"}` is published there when the
            campaign completes, so other services (and tests) wait on an event, not a poll
    ARGV[10] most targets to dispatch
    ARGV[11] lease, ms
    ARGV[12] reason code of the outcome (counted as `r:<CODE>` unless UPGRADED)
    ARGV[13] run token for the first target picked, which the same worker runs next (claimed
             here as claim-1.lua would, saving that round trip); '' to leave every pick to BullMQ
    ARGV[14] optional: the run's checksum conflicts, added to the status hash's `conflicts`
             before the outcome is counted (so a reader woken by completion sees them)
    ARGV[15] optional: '1' when the run (or an earlier one) kept a pre-image in `:attempts`
             'u:<target key>' (undo): dropped now, the record carries it
    ARGV[16] optional: the run's slowest platform call, ms, when the campaign has an adaptive
             limit ('' otherwise): moves the adaptive figures of the run's keys (adaptive.lua)
    ARGV[17] optional: '1' when the run ended on an overload answer (a 429, a 503 or a timeout)

  Output:
    { seq, claimed, attemptsMade, retryAfterWaits, lastError, keptUndo, now, nextWakeMs, reclaimed,
      holder1, entry1, ... }
      seq: > 0 recorded and counted (the record is in the outbox with this seq, for the caller
      to archive), 0 recorded earlier (nothing changed but the release);
      claimed: claim-1.lua's code for the first pick with ARGV[13]'s token (CLAIMED, with
      attemptsMade, retryAfterWaits, lastError and keptUndo as there; DONE it had an outcome already and
      was released), or NOT_CLAIMED when no token was given or nothing was picked;
      the rest as dispatch-1.lua, without its housekeeping (nextWakeMs -1, or now when the step's
      looks ran out on parked groups with ready ones left; reclaimed 0, then any
      maintenance-window zones found passed)
    STATUS_GONE  the campaign's status hash is missing (deleted or expired)
]]
-- @include "claim"
-- @include "dispatch"
-- @include "adaptive"

local holder, token, c, targetKey, outcome = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local status = ck(c, 'status')

local released, gid = false, nil
local v = redis.call('HGET', S .. 'inflight', holder)
if v then
  local held
  gid, held = parse_inflight(v)
  if held == token then
    release(holder)
    released = true
  end
end

if redis.call('EXISTS', status) == 0 then
  return CODES.STATUS_GONE
end
if released then redis.call('HINCRBY', status, 'active', -1) end
local conflicts = tonumber(ARGV[14] or '0') or 0
if conflicts > 0 then redis.call('HINCRBY', status, 'conflicts', conflicts) end
if ARGV[15] == '1' then redis.call('HDEL', ck(c, 'attempts'), 'u:' .. targetKey) end
local now = now_ms()
-- Before the dispatch step below, so the next pick already runs at the moved figure.
if released and (ARGV[16] or '') ~= '' then adapt(c, group_keys(c, gid), tonumber(ARGV[16]), ARGV[17] == '1', now) end
local function next_step(seq)
  local leaseMs = tonumber(ARGV[11])
  local out = dispatch_step(tonumber(ARGV[10]), leaseMs, now, false)
  local claim = { CODES.NOT_CLAIMED, 0, 0, '', '' }
  local own, entry = out[4], out[5]
  if ARGV[13] ~= '' and own then
    local key = target_key(campaign_of(own), entry)
    claim = claim_run(own, ARGV[13], leaseMs, key, ARGV[9], now, true)
    for i = #claim + 1, 5 do claim[i] = 0 end
  end
  for i = 5, 1, -1 do table.insert(out, 1, claim[i]) end
  table.insert(out, 1, seq)
  return out
end
return next_step(record_outcome(c, holder_seq(holder), targetKey, outcome, ARGV[12], ARGV[8], now, ARGV[9]))
