--[[
  Turn a producer's staged campaign into a live one, atomically. While staging, the producer
  writes the campaign's group lists, group table and meta under the campaign's own keys, registered
  in <p>:sched:staging; nothing schedules them because the campaign has no status hash and no
  ring entry. This step creates both, and puts the campaign's limit figures in its keys'
  capacity records (use_limits), so the campaign appears whole or not at all.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3] spec JSON
    ARGV[4] operation type
    ARGV[5] campaign name ('' when none)
    ARGV[6] number of distinct targets staged
    ARGV[7] number of groups staged (gids 0 .. n-1)
    ARGV[8] events channel: `{"id":...,"state":"running"}` wakes the workers' dispatchers
    ARGV[9] '1' when the targets are still to be discovered (appendTargets-1.lua adds them,
            and the campaign cannot complete until discovery ends)

  Output:
    { CREATED, total }  created
    { EXISTED, total }  the campaign existed already; nothing changed
    NOT_STAGED          this campaign is not staged (the staging expired and was discarded)
    STAGED_MISMATCH     the staged lists hold another number of targets than the producer wrote
]]
-- @include "meta"
-- @include "groups"
-- @include "limits"
-- @include "outcomes"
-- @include "steps"

local c, total, groups = ARGV[2], tonumber(ARGV[6]), tonumber(ARGV[7])
local discovering = ARGV[9] == '1'
local status = ck(c, 'status')
if redis.call('EXISTS', status) == 1 then
  return { CODES.EXISTED, tonumber(redis.call('HGET', status, 'total')) }
end
if not redis.call('ZSCORE', S .. 'staging', c) then
  return CODES.NOT_STAGED
end
local staged = 0
for gid = 0, groups - 1 do
  staged = staged + redis.call('LLEN', ck(c, 'g:' .. gid))
end
if staged ~= total then
  return CODES.STAGED_MISMATCH
end

local now = now_ms()
redis.call('SET', ck(c, 'spec'), ARGV[3])
redis.call('HSET', status,
  'state', (total == 0 and not discovering) and 'completed' or 'running',
  'operation', ARGV[4],
  'name', ARGV[5],
  'total', total,
  'pending', total, 'active', 0,
  'upgraded', 0, 'skipped', 0, 'failed', 0,
  'retries', 0, 'conflicts', 0, 'reclaimed', 0,
  'retryAfterWaits', 0, 'retryAfterWaitMs', 0,
  'createdAt', now, 'updatedAt', now)
if discovering then redis.call('HSET', status, 'discovering', 1, 'discoverStart', 0) end
if cjson.decode(ARGV[3]).dryRun == true then redis.call('HSET', status, 'dryRun', 1) end
local rollout = meta_get(c, 'rollout')[1]
if rollout then
  local steps = cjson.decode(rollout)
  redis.call('HSET', status, 'rolloutSteps', #steps, 'admitted', 0)
  enter_step(c, 0, now)
  -- What `status` shows of each step (cohort, target count) beside its counts.
  local plan = meta_get(c, 'rolloutPlan')[1]
  if plan then redis.call('HSET', status, 'rolloutPlan', plan) end
end
-- The campaign's figures count toward its keys' capacity from now until it ends.
local gids = {}
for gid = 0, groups - 1 do gids[#gids + 1] = tostring(gid) end
use_limits(c, gids)
redis.call('HSET', meta_key(c), 'capgid', groups)
if total == 0 then
  complete_if_done(c, now, ARGV[8])
end
for gid = 0, groups - 1 do
  if redis.call('LLEN', ck(c, 'g:' .. gid)) > 0 then make_ready(c, tostring(gid)) end
end
redis.call('ZADD', P .. ':campaigns', now, c)
redis.call('ZREM', S .. 'staging', c)
if not discovering then redis.call('UNLINK', ck(c, 'seen')) end
if total > 0 or discovering then redis.call('PUBLISH', ARGV[8], cjson.encode({ id = c, state = 'running' })) end
return { CODES.CREATED, total }
