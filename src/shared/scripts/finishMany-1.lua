--[[
  The end of runs: each run's outcome recorded exactly once, counted, its slots released, then
  one dispatch step whose picks go, claimed, to the runs that asked for a next target (the same
  worker runs it next: no round trip through BullMQ), in one step: a slot frees exactly when its
  target's outcome is known, and the next target of the key takes it in the same round trip.
  A run whose lease was lost still records (the platform call happened) but releases nothing:
  the slots are no longer its own. A campaign whose status hash is gone (expired or deleted)
  gets its slots back and nothing else: no counter is written, so the hash is not brought back
  without its expiry. The worker sends the runs that ended while its previous calls were on
  their way together (group commit, as databases do: worker/finisher.ts): per run what must be
  per run, per call one clock read and one dispatch step, so the script call, its round trip
  and the dispatch window's reads are shared by the group. One run is the same call
  (`scripts.finish`).

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] scheduler caps (includes/caps.lua)
    ARGV[3] events channel: `{"id":...,"state":"completed"}` is published there when a
            campaign completes, so other services (and tests) wait on an event, not a poll
    ARGV[4] most targets to dispatch (raised to the number of runs that ask for a next target)
    ARGV[5] lease, ms
    ARGV[6] number of runs, N
    then N runs of 11 fields each, from ARGV[7]:
      holder, run token, campaign id, target key, outcome, outcome record JSON, reason code,
      run token for a next target ('' for none), checksum conflicts, '1' when a pre-image was
      kept in `:attempts` (else ''), and last the adaptive sample: the slowest call, ms ('' for
      none; '|1' appended when the run ended on an overload answer): the conflicts are added to
      the status hash's `conflicts` before the outcome is counted (a reader woken by completion
      sees them); the kept pre-image ('u:<target key>') is dropped, the record carries it; the
      sample moves the adaptive figures of the run's keys (adaptive.lua) before the dispatch step

  Output:
    { now, nextWakeMs, reclaimed, N, then per run: seq, claimed, attemptsMade, retryAfterWaits,
      lastError, keptUndo, holder, entry, then the picks no run took: holder, entry, ... }
      nextWakeMs, reclaimed: the dispatch step's, as dispatch-1.lua's without its housekeeping
      (nextWakeMs -1, or now when its looks ran out on parked groups with ready ones left;
      reclaimed 0, then any maintenance-window zones found passed)
      seq: > 0 recorded and counted (its record in the outbox with this seq), 0 recorded
      earlier (nothing changed but the release), STATUS_GONE the campaign's status hash is
      missing (its slots were given back, nothing else);
      claimed .. keptUndo: claim-1.lua's answer for the run's next target, claimed with its
      token (CLAIMED or DONE), or NOT_CLAIMED with holder and entry '' (no token, or no pick
      left for it)
]]
-- @include "claim"
-- @include "dispatch"
-- @include "adaptive"

local channel, leaseMs, n = ARGV[3], tonumber(ARGV[5]), tonumber(ARGV[6])
local STRIDE = 11
local now = now_ms()

-- One run's end, before the dispatch step. Returns its seq, or
-- STATUS_GONE.
local live, touched = {}, {}
local function settle_one(holder, token, c, targetKey, outcome, recordJson, reason, conflicts, keptUndo, sample)
  local status = ck(c, 'status')
  local released, gid = false, nil
  local v = redis.call('HGET', S .. 'inflight', holder)
  if v then
    local held
    gid, held = parse_inflight(v)
    if held == token then
      release(holder, v)
      released = true
    end
  end
  -- Nothing in this call deletes a status hash: asked once per campaign.
  if live[c] == nil then live[c] = redis.call('EXISTS', status) == 1 end
  if not live[c] then return CODES.STATUS_GONE end
  if released then count_later(c, 'active', -1) end
  conflicts = tonumber(conflicts) or 0
  if conflicts > 0 then redis.call('HINCRBY', status, 'conflicts', conflicts) end
  if keptUndo == '1' then redis.call('HDEL', ck(c, 'attempts'), 'u:' .. targetKey) end
  if released and sample ~= '' then
    local ms, overload = string.match(sample, '^(%d+)(.*)$')
    adapt(c, group_keys(c, gid), tonumber(ms), overload == '|1', now)
  end
  return record_outcome(c, holder_seq(holder), targetKey, outcome, reason, recordJson, now, channel, touched)
end

-- Settles the runs, then one dispatch step for them; its counts are written even if it stops on
-- an error (counted, counters.lua).
local function finish_all()
  -- The tokens of the runs that ask for a next target, in order: the step's first picks go to
  -- them, and are written claimed by them.
  local seqs, tokens = {}, {}
  for i = 1, n do
    local b = 6 + (i - 1) * STRIDE
    seqs[i] = settle_one(ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 9], ARGV[b + 10], ARGV[b + 11])
    if ARGV[b + 8] ~= '' and seqs[i] ~= CODES.STATUS_GONE then tokens[#tokens + 1] = ARGV[b + 8] end
  end

  touch_campaigns(touched, now)

  local step = dispatch_step(math.max(tonumber(ARGV[4]), #tokens), leaseMs, now, false, tokens)
  -- The step's next due time (now, when its looks ran out on parked groups with ready ones left)
  -- and its reclaimed element (which carries the maintenance-window zones found passed) go back
  -- as dispatch-1.lua's do: the worker's dispatcher acts on both.
  local out = { now, step[2], step[3], n }
  local nextPick = 4
  for i = 1, n do
    local b = 6 + (i - 1) * STRIDE
    local token = ARGV[b + 8]
    local own, entry = step[nextPick], step[nextPick + 1]
    out[#out + 1] = seqs[i]
    if token ~= '' and seqs[i] ~= CODES.STATUS_GONE and own then
      nextPick = nextPick + 2
      local claim = claim_run(own, token, leaseMs, target_key(campaign_of(own), entry), channel, now, true)
      for j = 1, 5 do out[#out + 1] = claim[j] or 0 end
      out[#out + 1] = own
      out[#out + 1] = entry
    else
      for _, x in ipairs({ CODES.NOT_CLAIMED, 0, 0, '', '', '', '' }) do out[#out + 1] = x end
    end
  end
  for j = nextPick, #step do out[#out + 1] = step[j] end
  return out
end

return counted(finish_all)
