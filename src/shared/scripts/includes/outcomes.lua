--[[
  outcomes: a target's outcome recorded and counted, and what follows from the counts: the
  failure budget, the rollout steps, and the campaign's end.
  Provides: CAMPAIGN_KEYS, read_status, complete_if_done, record_outcome, touch_campaigns,
  cancelled_record, cancel_returned.
  Needs: keys, meta, groups, limits, notify, steps.
  Each state change here records its webhook event (notify.lua) in the same step.
]]
-- @include "keys"
-- @include "meta"
-- @include "groups"
-- @include "limits"
-- @include "notify"
-- @include "steps"

-- Staged rollout and failure budget, judged after every counted outcome of a running campaign.
-- The budget: once `minSamples` targets have finished (upgraded or failed; skips count for
-- neither side) since the campaign started or was last resumed, a failed share above
-- `maxFailureRatio` pauses it (or, with `onBreach` 'undo', cancels it for its undo campaign).
-- The current step is judged the same way on its own outcomes (since it opened or the campaign
-- was last resumed), so a failing cohort pauses before the next starts even when the steps
-- before it make the campaign's ratio look fine. A step: when every target admitted so far has
-- an outcome, the next step opens (`gate: auto`) or the campaign waits in `gated` (`gate: manual`).
local rollout_meta = {}

-- Returns true when it wrote the status hash (a breach, a gate, the next step).
local function rollout_check(c, now, channel, st)
  if st.state ~= 'running' then return false end
  local status = ck(c, 'status')
  local up, sk, fa = tonumber(st.upgraded or '0'), tonumber(st.skipped or '0'), tonumber(st.failed or '0')
  -- The producer wrote these; nothing changes them during a script call, which may judge many
  -- outcomes of the campaign (finishMany-1.lua).
  local g = rollout_meta[c]
  if not g then
    g = meta_get(c, 'maxFailureRatio', 'minSamples', 'gate', 'rollout', 'onBreach')
    rollout_meta[c] = g
  end
  local maxRatio = tonumber(g[1] or '')
  if maxRatio then
    local s0, f0 = tonumber(st.budgetSamples0 or '0'), tonumber(st.budgetFailed0 or '0')
    local samples, failed = up + fa - s0, fa - f0
    local breached = samples > 0 and samples >= tonumber(g[2] or '0') and failed / samples > maxRatio
    -- The step's own baseline, unless a resume since it opened set a later one.
    local ss0, sf0 = tonumber(st.stepSamples0 or '0'), tonumber(st.stepFailed0 or '0')
    if not breached and ss0 > s0 then
      samples, failed = up + fa - ss0, fa - sf0
      breached = samples > 0 and samples >= tonumber(g[2] or '0') and failed / samples > maxRatio
    end
    if breached then
      redis.call('HSET', status, 'breachFailed', failed, 'breachSamples', samples,
        'breachRatio', string.format('%.4f', failed / samples), 'breachStep', st.rolloutStep or 0, 'updatedAt', now)
      if g[5] == 'undo' then
        -- Cancelled at once, so nothing more starts; a worker drains the rest and makes the undo
        -- campaign (worker/breach-undo.ts), found here after any crash.
        redis.call('HSET', status, 'state', 'cancelled', 'cancelReason', 'FAILURE_BUDGET_EXCEEDED')
        redis.call('ZADD', S .. 'undo-due', now, c)
        notify(c, 'cancelled', now, { reason = 'FAILURE_BUDGET_EXCEEDED' })
        redis.call('PUBLISH', channel, cjson.encode({ id = c, state = 'cancelled', reason = 'FAILURE_BUDGET_EXCEEDED', undo = true }))
      else
        redis.call('HSET', status, 'state', 'paused', 'pausedReason', 'FAILURE_BUDGET_EXCEEDED', 'pausedAt', now)
        notify(c, 'paused', now, { reason = 'FAILURE_BUDGET_EXCEEDED' })
        redis.call('PUBLISH', channel, cjson.encode({ id = c, state = 'paused', reason = 'FAILURE_BUDGET_EXCEEDED' }))
      end
      return true
    end
  end
  local limit = tonumber(st.rolloutLimit or '')
  if not limit or up + sk + fa < limit then return false end
  local steps = cjson.decode(g[4])
  local step = tonumber(st.rolloutStep or '0')
  if step + 1 >= #steps then return false end
  if g[3] == 'manual' then
    redis.call('HSET', status, 'state', 'gated', 'updatedAt', now)
    -- A step ends the same way behind a gate as without one; `gated` says it is held too.
    notify(c, 'step-completed', now, { step = step })
    notify(c, 'gated', now, { step = step })
    redis.call('PUBLISH', channel, cjson.encode({ id = c, state = 'gated', step = step }))
  else
    enter_step(c, step + 1, now)
    back_on_ring(c)
    notify(c, 'step-completed', now, { step = step })
    redis.call('PUBLISH', channel, cjson.encode({ id = c, state = 'running', step = step + 1 }))
  end
  return true
end

-- The status fields the completion and rollout checks read, in one HMGET (they run after every
-- counted outcome).
local STATUS_FIELDS = { 'state', 'total', 'upgraded', 'skipped', 'failed', 'would-upgrade', 'would-skip', 'would-fail',
  'discovering', 'rolloutLimit', 'rolloutStep', 'budgetFailed0', 'budgetSamples0', 'stepFailed0', 'stepSamples0' }
local DONE_FIELDS = { 'upgraded', 'skipped', 'failed', 'would-upgrade', 'would-skip', 'would-fail' }

local function read_status(c)
  local v = redis.call('HMGET', ck(c, 'status'), unpack(STATUS_FIELDS))
  local st = {}
  for i, f in ipairs(STATUS_FIELDS) do st[f] = v[i] end
  return st
end

-- The campaign keys that expire together once it has ended (retentionMs) and stop expiring when
-- an operator's retry runs it again. A campaign from before :meta keeps its meta in :groups.
local CAMPAIGN_KEYS = { 'status', 'spec', 'outcomes', 'outbox', 'groups', 'meta', 'attempts', 'ready', 'gstate', 'notify', 'parked', 'win', 'winwait', 'winpark' }

-- When every target has an outcome: the campaign ends (`completed`, or stays `cancelled`), its
-- data starts its retention clock, and the end is announced.
local function complete_if_done(c, now, channel, st)
  st = st or read_status(c)
  -- While discovery still pages through the platform, more targets may come.
  if st.discovering then return false end
  local done = 0
  for _, f in ipairs(DONE_FIELDS) do done = done + tonumber(st[f] or '0') end
  if done < tonumber(st.total or '0') then return false end
  local final = st.state == 'cancelled' and 'cancelled' or 'completed'
  local status = ck(c, 'status')
  redis.call('HSET', status, 'state', final, 'finishedAt', now)
  -- A cancelled campaign's event was recorded when it was cancelled; its drain ending is not another.
  if final == 'completed' then notify(c, 'completed', now) end
  drop_limits(c)
  local retention = tonumber(meta_get(c, 'retentionMs')[1] or '0')
  if retention > 0 then
    for _, k in ipairs(CAMPAIGN_KEYS) do redis.call('PEXPIRE', ck(c, k), retention) end
  end
  redis.call('PUBLISH', channel, cjson.encode({ id = c, state = final, ended = true }))
  return true
end

-- A grouping caller's campaigns' status fields (STATUS_FIELDS), read at their first outcome of
-- the call and kept up to date from there: between that caller's records nothing else writes
-- these fields, and when a record's checks write the hash (the end, a breach, a step), the copy
-- is dropped.
local status_read = {}

-- Records a target's outcome once and counts it, and every outcome but an upgrade by its reason
-- too (`r:<CODE>`), so a dashboard shows why targets failed or were skipped without reading the
-- report. The marker (which targets have an outcome: the dedup, and what `retry` and the report
-- index by) stays in this slot; the record goes to the outbox, from which workers copy it to the
-- campaign's own slot (docs/ARCHITECTURE.md, "Outcome records"). `seq` (holder_seq, next_seq)
-- orders the records of a campaign, so a late copy of an older record never replaces a newer one.
-- Returns the record's seq if new, 0 if recorded before. `touched` (optional): a caller that
-- records many outcomes in one call (finishMany-1.lua) gets each campaign marked there (added
-- to `sched:outboxes` once per call), and sets its `updatedAt` once itself (touch_campaigns);
-- its campaigns' status fields are read once per call (status_read).
local function record_outcome(c, seq, targetKey, outcome, reason, recordJson, now, channel, touched)
  if redis.call('HSETNX', ck(c, 'outcomes'), targetKey, seq .. '|' .. outcome .. '|' .. reason) == 0 then return 0 end
  redis.call('HSET', ck(c, 'outbox'), seq, recordJson .. '\n' .. targetKey)
  local status = ck(c, 'status')
  -- Listed at once, even for a caller that groups: a later error in the same script call keeps
  -- this write, and a record outside `sched:outboxes` would wait for another of its campaign's.
  if not (touched and touched[c]) then redis.call('SADD', S .. 'outboxes', c) end
  if touched then touched[c] = true end
  local count = redis.call('HINCRBY', status, outcome, 1)
  if reason ~= 'UPGRADED' then redis.call('HINCRBY', status, 'r:' .. reason, 1) end
  if not touched then redis.call('HSET', status, 'updatedAt', now) end
  local st = touched and status_read[c]
  if st then
    st[outcome] = count
  else
    st = read_status(c)
  end
  status_read[c] = touched and st or nil
  -- Every target with an outcome ran in the current step: a step opens only once all the
  -- targets admitted before it have theirs.
  if st.rolloutStep then redis.call('HINCRBY', status, 'step:' .. st.rolloutStep .. ':' .. outcome, 1) end
  if complete_if_done(c, now, channel, st) or rollout_check(c, now, channel, st) then status_read[c] = nil end
  return seq
end

-- What record_outcome left to its caller for the campaigns in `touched`.
local function touch_campaigns(touched, now)
  for c in pairs(touched) do
    redis.call('HSET', ck(c, 'status'), 'updatedAt', now)
  end
end

-- The record of a target of a cancelled campaign that did not run (again). An earlier run of it
-- may have written (its answer lost, then a retry or a reclaim was pending): the pre-image that
-- run kept (':attempts' 'u:<target>') goes into the record, so that an undo takes that write
-- back too, and leaves ':attempts'.
local function cancelled_record(c, targetKey, t, now)
  local json = cjson.encode({ target = t, outcome = 'skipped', reason = 'CANCELLED', attempts = 0, error = cjson.null, at = now })
  local attempts = ck(c, 'attempts')
  local kept = redis.call('HGET', attempts, 'u:' .. targetKey)
  if not kept then return json end
  redis.call('HDEL', attempts, 'u:' .. targetKey)
  -- Spliced in as text: decoding and encoding it again would round large numbers.
  return string.sub(json, 1, -2) .. ',"undo":' .. kept .. '}'
end

-- A target a cancelled campaign gets back after its drain (a reclaimed lease, a Retry-After, a
-- due retry): recorded CANCELLED at once, as nothing dispatches a cancelled campaign's groups.
-- The caller has taken it out of `active` or `pending`. The events channel is the prefix's
-- (eventsChannel in src/shared/keys.ts): the campaign may end here.
local function cancel_returned(c, entry, now)
  local key = target_key(c, entry)
  record_outcome(c, next_seq(c), key, 'skipped', 'CANCELLED', cancelled_record(c, key, cjson.decode(entry), now), now, P .. ':campaign-events')
end
