--[[
  steps: a staged rollout's steps. Entering one sets its target count (`rolloutLimit`) and its
  budget baseline; with cohort steps it also says which groups it serves: the cohort groups
  (`s:<gid>` = the cohort's index in rollout.steps) up to its own, and the groups of the rest
  (`s:<gid>` = 'r') only in a percent, count or last step. The last step serves every group, so
  an operator's retry of an earlier step's targets always runs.
  Provides: step_serves, park, enter_step. Needs: keys, meta, groups.
]]
-- @include "keys"
-- @include "meta"
-- @include "groups"

-- Whether the current step may serve the group. `at`, `rest`: the status fields rolloutAt and
-- rolloutRest (absent without cohort steps and in the last step).
local function step_serves(c, gid, at, rest)
  if not at then return true end
  local s = redis.call('HGET', ck(c, 'groups'), 's:' .. gid)
  if not s then return true end
  if s == 'r' then return rest == '1' end
  return tonumber(s) <= tonumber(at)
end

-- A group of a later step waits out of the ready list ('p') until a step that serves it opens,
-- so dispatch does not look at it again and again meanwhile.
local function park(c, gid)
  redis.call('HSET', ck(c, 'gstate'), gid, 'p')
  redis.call('RPUSH', ck(c, 'parked'), gid)
end

-- Opens step `step` (0-based): its cumulative target count, the baseline its own failure budget
-- is judged from, and with cohorts which groups it serves (the parked ones are looked at again).
local function enter_step(c, step, now)
  local status = ck(c, 'status')
  local g = meta_get(c, 'rollout', 'rolloutPlan')
  local limits = cjson.decode(g[1])
  local n = redis.call('HMGET', status, 'upgraded', 'failed')
  redis.call('HSET', status, 'rolloutStep', step, 'rolloutLimit', limits[step + 1] or limits[#limits],
    'stepFailed0', n[2] or '0', 'stepSamples0', tonumber(n[1] or '0') + tonumber(n[2] or '0'), 'updatedAt', now)
  if not g[2] then return end
  local plan = cjson.decode(g[2])
  if step + 1 >= #plan or plan[step + 1].at == nil then
    redis.call('HDEL', status, 'rolloutAt', 'rolloutRest')
  else
    redis.call('HSET', status, 'rolloutAt', plan[step + 1].at, 'rolloutRest', plan[step + 1].rest and 1 or 0)
  end
  local parked = ck(c, 'parked')
  local gstate = ck(c, 'gstate')
  for _, gid in ipairs(redis.call('LRANGE', parked, 0, -1)) do
    if redis.call('HGET', gstate, gid) == 'p' then make_ready(c, gid) end
  end
  redis.call('DEL', parked)
end
