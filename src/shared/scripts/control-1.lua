--[[
  An operator's control of a campaign: pause, resume, cancel or promote. The dispatch step serves
  only `running` campaigns, and `claim` holds back a paused or gated campaign's dispatched
  targets, so after this returns no new target of a paused campaign starts. A pause or cancel
  records its webhook event (`paused`, `cancelled`: includes/notify.lua) in the same step.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3] action: pause | resume | cancel | promote
    ARGV[4] reason recorded as `pausedReason` (pause only)
    ARGV[5] events channel: `{"id","state"}` is published on every change

  Output:
    { CHANGED, state }      changed (or already so: pausing a paused campaign changes nothing)
    { WRONG_STATE, state }  not allowed from the campaign's current state
    NO_SUCH_CAMPAIGN        no such campaign
]]
-- @include "meta"
-- @include "groups"
-- @include "notify"
-- @include "outcomes"
-- @include "steps"

local c, action = ARGV[2], ARGV[3]
local status = ck(c, 'status')
local state = redis.call('HGET', status, 'state')
if not state then return CODES.NO_SUCH_CAMPAIGN end
local now = now_ms()

-- `event`: the webhook event the change is (notify.lua), recorded before it is announced.
local function set(newState, event, reason)
  redis.call('HSET', status, 'state', newState, 'updatedAt', now)
  if event then notify(c, event, now, { reason = reason }) end
  redis.call('PUBLISH', ARGV[5], cjson.encode({ id = c, state = newState }))
  return { CODES.CHANGED, newState }
end

if action == 'pause' then
  if state == 'paused' then return { CODES.CHANGED, state } end
  if state ~= 'running' and state ~= 'gated' then return { CODES.WRONG_STATE, state } end
  -- A gated campaign resumes to its gate: its step is done, and nothing would gate it again.
  redis.call('HSET', status, 'pausedReason', ARGV[4], 'pausedAt', now, 'pausedFrom', state)
  return set('paused', 'paused', ARGV[4])
elseif action == 'resume' then
  if state == 'running' then return { CODES.CHANGED, state } end
  if state ~= 'paused' then return { CODES.WRONG_STATE, state } end
  local from = redis.call('HGET', status, 'pausedFrom')
  redis.call('HDEL', status, 'pausedReason', 'pausedAt', 'pausedFrom', 'breachFailed', 'breachSamples', 'breachRatio')
  -- The failure budget is judged afresh from here on, not at once on the same figures.
  local n = redis.call('HMGET', status, 'upgraded', 'failed')
  redis.call('HSET', status, 'budgetFailed0', n[2] or '0',
    'budgetSamples0', tonumber(n[1] or '0') + tonumber(n[2] or '0'))
  if from == 'gated' then return set('gated', 'gated') end
  back_on_ring(c)
  local out = set('running')
  -- A step whose last outcome came in while paused was not judged then (rollout_check runs for
  -- running campaigns): judged now, it gates or opens the next step.
  rollout_check(c, now, ARGV[5], read_status(c))
  return { out[1], redis.call('HGET', status, 'state') }
elseif action == 'cancel' then
  if state == 'cancelled' then return { CODES.CHANGED, state } end
  if state == 'completed' then return { CODES.WRONG_STATE, state } end
  return set('cancelled', 'cancelled', 'OPERATOR')
elseif action == 'promote' then
  if state ~= 'gated' then return { CODES.WRONG_STATE, state } end
  enter_step(c, tonumber(redis.call('HGET', status, 'rolloutStep') or '0') + 1, now)
  back_on_ring(c)
  return set('running')
end
return { CODES.WRONG_STATE, state }
