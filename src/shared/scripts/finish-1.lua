--[[
  Record a target's outcome exactly once, count it, release the run's slots and dispatch what
  can run next, in one step: a slot frees exactly when its target's outcome is known, and the
  next target of the key takes it in the same round trip. A run whose lease was lost still
  records (the platform call happened), but releases nothing: the slots are no longer its own.

  Input:
    KEYS[1] <prefix>:sched:ring, declared so a Redis Cluster client routes the call to the
            node of the prefix's hash tag slot, where every key this script touches lives
    ARGV[1] key prefix
    ARGV[2] holder
    ARGV[3] run token
    ARGV[4] campaign id
    ARGV[5] target key
    ARGV[6] outcome: upgraded | skipped | failed
    ARGV[7] outcome record JSON
    ARGV[8] events channel: `{"id":...,"state":"completed"}` is published there when the
            campaign completes, so other services (and tests) wait on an event, not a poll
    ARGV[9] most targets to dispatch
    ARGV[10] lease, ms
    ARGV[11] reason code of the outcome (counted as `r:<CODE>` unless UPGRADED)
    ARGV[12] run token for the first target picked, which the same worker runs next (claimed
             here as claim-1.lua would, saving that round trip); '' to leave every pick to BullMQ

  Output:
    { seq, claimed, attemptsMade, retryAfterWaits, lastError, now, nextWakeMs, reclaimed,
      holder1, entry1, ... }
      seq: > 0 recorded and counted (the record is in the outbox with this seq, for the caller
      to archive), 0 recorded earlier (nothing changed but the release);
      claimed: claim-1.lua's code for the first pick with ARGV[12]'s token (1 claimed, with
      attemptsMade, retryAfterWaits and lastError as there; 4 it had an outcome already and was
      released), or 5 when no token was given or nothing was picked;
      the rest as dispatch-1.lua, without its housekeeping (nextWakeMs is -1)
    -1  the campaign's status hash is missing (deleted or expired)
]]
-- @include _scheduler.lua

local holder, token, c, targetKey, outcome = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local status = ck(c, 'status')

local v = redis.call('HGET', S .. 'inflight', holder)
if v then
  local _, held = parse_inflight(v)
  if held == token then
    release(holder)
    redis.call('HINCRBY', status, 'active', -1)
  end
end

if redis.call('EXISTS', status) == 0 then
  return -1
end
local now = now_ms()
local function next_step(seq)
  local leaseMs = tonumber(ARGV[10])
  local out = dispatch_step(tonumber(ARGV[9]), leaseMs, now, false)
  local claim = { 5, 0, 0, '' }
  local own, entry = out[4], out[5]
  if ARGV[12] ~= '' and own then
    local key = target_key(campaign_of(own), entry)
    claim = claim_run(own, ARGV[12], leaseMs, key, ARGV[8], now, true)
    for i = #claim + 1, 4 do claim[i] = 0 end
  end
  for i = 4, 1, -1 do table.insert(out, 1, claim[i]) end
  table.insert(out, 1, seq)
  return out
end
return next_step(record_outcome(c, holder_seq(holder), targetKey, outcome, ARGV[11], ARGV[7], now, ARGV[8]))
