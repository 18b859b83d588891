--[[
  Shared by the scheduler scripts (pasted in where a script says `-- @include _scheduler.lua`).
  Every script that includes this takes ARGV[1] = the key prefix (UPSHIFT_PREFIX) and derives
  its keys from it, as BullMQ's scripts derive a job's keys from the queue's prefix.

  State (see docs/ARCHITECTURE.md, "Scheduler"):
    <p>:campaign:<c>:g:<gid>   LIST    pending target entries (target JSON) of one group
    <p>:campaign:<c>:groups    HASH    gid -> JSON [[key, concurrency, rateMax, ratePerMs, scope], ...]
                                       (scope 1: the connection's own key value, `<connection>/<value>`;
                                       0 or absent: the registry's); 'conn' -> connection id;
                                       'seq' -> holder counter; 'capgid' -> gids 0 .. capgid-1 are in
                                       the capacity records (use_limits)
    <p>:campaign:<c>:ready     LIST    gids that may have a runnable target (round robin)
    <p>:campaign:<c>:gstate    HASH    gid -> 'r' (in ready) | 'b' (waiting for a key) | 'd' (in delayed)
    <p>:campaign:<c>:w:<key>   LIST    gids of this campaign waiting for a slot on the key (FIFO)
    <p>:campaign:<c>:limitkeys SET     key values the campaign has figures on or may wait for: what
                                       its end takes back (drop_limits)
    <p>:campaign:<c>:rate:<key> STRING the campaign's own clock on a registry key whose rate it lowered
    <p>:campaign:<c>:attempts  HASH    target key -> attempts made; 'ra:' .. target key -> Retry-After waits
    <p>:campaign:<c>:outcomes  HASH    target key -> '<seq>|<outcome>|<reason>': which targets have an
                                       outcome (the record itself lives in the campaign's own slot)
    <p>:campaign:<c>:outbox    HASH    seq -> '<record JSON>\n<target key>' (JSON has no raw newline):
                                       records written here with their marker, until a worker has
                                       copied them to
                                       `<bare p>:campaign:{<c>}:records` (archive-1.lua, unoutbox-1.lua)
    <p>:sched:ring             LIST    campaigns with ready groups (round robin), mirrored by
    <p>:sched:inring           SET
    <p>:sched:inflight         HASH    holder -> '<gid>|<run token>|<entry>' (token '' until a run claims it)
    <p>:sched:leases           ZSET    holder -> lease expiry (ms)
    <p>:sched:slot:<key>       ZSET    holder -> lease expiry: the slots taken on a limit key value
    <p>:sched:rate:<key>       STRING  earliest time the next start may happen (GCRA, spacing perMs/max)
    <p>:sched:cap:<key>        HASH    a key's capacity record: campaign id -> '<concurrency>|<ms
                                       between starts>' (0 = none) of each live campaign using it;
                                       '=c' -> the smallest concurrency, '=r' -> the longest spacing,
                                       '=s' -> the shortest spacing ("Capacity records" below)
    <p>:sched:waiting:<key>    LIST    campaigns with a group waiting for a slot on the key, each once
                                       (exactly while its `:w:<key>` list is not empty): round robin
    <p>:sched:delayed          ZSET    '<c>|<gid>' -> when it may run again (rate window, Retry-After)
    <p>:sched:retry            ZSET    '<c>|<gid>|<entry>' -> when a failed attempt is tried again
    <p>:sched:pause            HASH    connection id -> no call before this time (Retry-After)
    <p>:sched:workers          ZSET    '<worker id>|<concurrency>' -> registration expiry
    <p>:sched:capacity         STRING  sum of live workers' concurrency (the dispatch window)
    <p>:sched:outboxes         SET     campaigns whose outbox may hold records, or whose records
                                       still need their retention TTL

  A holder is '<campaign id>.<n>': one dispatch of one target. Every group with pending entries
  is in exactly one of ready / a key's waiting list / delayed (stale extra memberships are
  harmless: waking a group twice costs a look, never a lost target).
]]
local P = ARGV[1]
local S = P .. ':sched:'

local function ck(c, suffix)
  return P .. ':campaign:' .. c .. ':' .. suffix
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function campaign_of(holder)
  return string.match(holder, '^(.*)%.%d+$')
end

local function parse_inflight(v)
  return string.match(v, '^(%d+)|([^|]*)|(.*)$')
end

local function group_keys(c, gid)
  local json = redis.call('HGET', ck(c, 'groups'), gid)
  if not json then return {} end
  return cjson.decode(json)
end

-- Puts a group in its campaign's ready list (and the campaign on the ring), from whatever it
-- waited in: blocked, delayed or idle. A group already ready is left where it is.
local function make_ready(c, gid)
  local gstate = ck(c, 'gstate')
  if redis.call('HGET', gstate, gid) == 'r' then return end
  redis.call('HSET', gstate, gid, 'r')
  redis.call('RPUSH', ck(c, 'ready'), gid)
  if redis.call('SADD', S .. 'inring', c) == 1 then
    redis.call('RPUSH', S .. 'ring', c)
  end
end

-- A group that still has pending entries but is in no structure gets put somewhere.
local function ensure_scheduled(c, gid, wakeAt, now)
  if redis.call('HEXISTS', ck(c, 'gstate'), gid) == 1 then return end
  if wakeAt > now then
    redis.call('HSET', ck(c, 'gstate'), gid, 'd')
    redis.call('ZADD', S .. 'delayed', wakeAt, c .. '|' .. gid)
  else
    make_ready(c, gid)
  end
end

-- A group waits for a slot on a full key: at the back of its campaign's groups waiting there,
-- and its campaign at the back of the key's campaigns unless it is in that queue already.
local function wait_on(c, gid, key)
  redis.call('HSET', ck(c, 'gstate'), gid, 'b')
  if redis.call('RPUSH', ck(c, 'w:' .. key), gid) == 1 then
    redis.call('RPUSH', S .. 'waiting:' .. key, c)
  end
end

-- A slot freed on the key: the campaign first in its queue gets another look for its first
-- waiting group, and goes to the back if it has more, so campaigns waiting on a key take
-- turns however many groups each has. Stale entries (a group woken by another path) are skipped.
local function wake_one(key)
  local queue = S .. 'waiting:' .. key
  for _ = 1, 8 do
    local c = redis.call('LPOP', queue)
    if not c then return end
    local waiting = ck(c, 'w:' .. key)
    local gstate = ck(c, 'gstate')
    local woke = false
    for _ = 1, 8 do
      local gid = redis.call('LPOP', waiting)
      if not gid then break end
      if redis.call('HGET', gstate, gid) == 'b' then
        make_ready(c, gid)
        woke = true
        break
      end
    end
    if redis.call('LLEN', waiting) > 0 then redis.call('RPUSH', queue, c) end
    if woke then return end
  end
end

-- Capacity records. A scoped key value (the connection's own, `<connection>/<value>`) may be
-- used by several campaigns on the connection, each with its own figures: the key holds the
-- smallest concurrency and the longest spacing between starts among the live ones, so no
-- campaign runs it past what another promised the platform. `<p>:sched:cap:<key>` keeps each
-- live campaign's figures and, in '=c' / '=r', the strictest, which is all a dispatch reads.
-- Written when a campaign starts using a group (commit, a discovered page, an operator's retry)
-- and taken back when it ends (complete_if_done), so an ended campaign's figure stops counting.
-- A registry key (not scoped) holds the registry's figures, which no campaign can raise (they
-- are clipped at enqueue) nor lower for others: a campaign's lower concurrency only keeps its
-- own targets from starting (the check compares the slots with its own figure), and a lower
-- rate runs on a clock of the campaign's own, while the key's clock is spaced by '=s', the
-- shortest spacing among the live campaigns with a rate on it (the registry's).

local function parse_figures(v)
  local conc, spacing = string.match(v, '^([^|]*)|(.*)$')
  return tonumber(conc) or 0, tonumber(spacing) or 0
end

-- Merges a campaign's figures on a key into the key's record (a campaign only ever tightens its
-- own entry while it lives) and the summaries with it.
local function use_figures(c, key, f)
  local cap = S .. 'cap:' .. key
  local mine = redis.call('HGET', cap, c)
  if mine then
    local conc, spacing = parse_figures(mine)
    if conc > 0 and (f[1] == 0 or conc < f[1]) then f[1] = conc end
    if spacing > f[2] then f[2] = spacing end
  end
  redis.call('HSET', cap, c, f[1] .. '|' .. f[2])
  local now = redis.call('HMGET', cap, '=c', '=r', '=s')
  if f[1] > 0 and (not now[1] or f[1] < tonumber(now[1])) then redis.call('HSET', cap, '=c', f[1]) end
  if f[2] > 0 and (not now[2] or f[2] > tonumber(now[2])) then redis.call('HSET', cap, '=r', f[2]) end
  if f[2] > 0 and (not now[3] or f[2] < tonumber(now[3])) then redis.call('HSET', cap, '=s', f[2]) end
end

-- The campaign uses these groups: its figures go into the records of their keys (a registry
-- key's: its rate only), and every key it has a figure on or may wait for is listed for its end.
local function use_limits(c, gids)
  local figures, listed, order = {}, {}, {}
  for _, gid in ipairs(gids) do
    local json = redis.call('HGET', ck(c, 'groups'), gid)
    for _, k in ipairs(json and cjson.decode(json) or {}) do
      local key = k[1]
      if k[5] == 1 or k[2] > 0 or k[3] > 0 then
        if not listed[key] then
          listed[key] = true
          order[#order + 1] = key
        end
      end
      if k[5] == 1 or k[3] > 0 then
        local f = figures[key] or { 0, 0 }
        figures[key] = f
        if k[5] == 1 and k[2] > 0 and (f[1] == 0 or k[2] < f[1]) then f[1] = k[2] end
        if k[3] > 0 and k[4] / k[3] > f[2] then f[2] = k[4] / k[3] end
      end
    end
  end
  for i = 1, #order, 1000 do
    redis.call('SADD', ck(c, 'limitkeys'), unpack(order, i, math.min(i + 999, #order)))
  end
  for _, key in ipairs(order) do
    local f = figures[key]
    if f then use_figures(c, key, f) end
  end
end

-- The campaign ended: its figures leave every record (the strictest is worked out again from
-- the campaigns left), and its waiting lists go.
local function drop_limits(c)
  local listed = ck(c, 'limitkeys')
  for _, key in ipairs(redis.call('SMEMBERS', listed)) do
    local cap = S .. 'cap:' .. key
    if redis.call('HDEL', cap, c) == 1 then
      local all = redis.call('HGETALL', cap)
      local conc, longest, shortest, users = 0, 0, 0, 0
      for i = 1, #all, 2 do
        if string.sub(all[i], 1, 1) ~= '=' then
          users = users + 1
          local fc, fs = parse_figures(all[i + 1])
          if fc > 0 and (conc == 0 or fc < conc) then conc = fc end
          if fs > longest then longest = fs end
          if fs > 0 and (shortest == 0 or fs < shortest) then shortest = fs end
        end
      end
      if users == 0 then
        redis.call('DEL', cap)
      else
        if conc > 0 then redis.call('HSET', cap, '=c', conc) else redis.call('HDEL', cap, '=c') end
        if longest > 0 then redis.call('HSET', cap, '=r', longest, '=s', shortest) else redis.call('HDEL', cap, '=r', '=s') end
      end
    end
    -- The campaign is in the key's queue exactly while it has this list.
    if redis.call('DEL', ck(c, 'w:' .. key)) == 1 then
      redis.call('LREM', S .. 'waiting:' .. key, 0, c)
    end
  end
  redis.call('DEL', listed)
end

-- Frees the holder's slots (waking a waiter per slot) and forgets the holder.
-- Returns gid, token, entry of the released holder, or nil when it was not held.
local function release(holder)
  local v = redis.call('HGET', S .. 'inflight', holder)
  redis.call('ZREM', S .. 'leases', holder)
  if not v then return nil end
  local gid, token, entry = parse_inflight(v)
  local c = campaign_of(holder)
  for _, k in ipairs(group_keys(c, gid)) do
    if redis.call('ZREM', S .. 'slot:' .. k[1], holder) == 1 then
      wake_one(k[1])
    end
  end
  redis.call('HDEL', S .. 'inflight', holder)
  return gid, token, entry
end

-- Puts a released holder's target back at the head of its group: it runs next.
local function requeue(c, gid, entry, wakeAt, now)
  local status = ck(c, 'status')
  if redis.call('EXISTS', status) == 0 then return end
  redis.call('LPUSH', ck(c, 'g:' .. gid), entry)
  redis.call('HINCRBY', status, 'active', -1)
  redis.call('HINCRBY', status, 'pending', 1)
  redis.call('HINCRBY', status, 'admitted', -1)
  ensure_scheduled(c, gid, wakeAt, now)
end

-- A target's key from its JSON, as the operation's `targetKey` computes it: the id field, and
-- '@<version>' when the operation has a version field and the target sets it.
local function target_key(c, entry)
  local fields = cjson.decode(redis.call('HGET', ck(c, 'groups'), 'tk'))
  local t = cjson.decode(entry)
  local key = tostring(t[fields[1]])
  if fields[2] and t[fields[2]] ~= nil then key = key .. '@' .. tostring(t[fields[2]]) end
  return key, t
end

-- Puts a campaign whose ready list has groups back in the round robin.
local function back_on_ring(c)
  if redis.call('LLEN', ck(c, 'ready')) > 0 and redis.call('SADD', S .. 'inring', c) == 1 then
    redis.call('RPUSH', S .. 'ring', c)
  end
end

-- Staged rollout and failure budget, judged after every counted outcome of a running campaign.
-- The budget: once `minSamples` targets have finished (upgraded or failed; skips count for
-- neither side) since the campaign started or was last resumed, a failed share above
-- `maxFailureRatio` pauses it. A step: when every target admitted so far has an outcome, the
-- next step opens (`gate: auto`) or the campaign waits in `gated` (`gate: manual`).
local function rollout_check(c, now, channel, st)
  if st.state ~= 'running' then return end
  local status = ck(c, 'status')
  local up, sk, fa = tonumber(st.upgraded or '0'), tonumber(st.skipped or '0'), tonumber(st.failed or '0')
  local g = redis.call('HMGET', ck(c, 'groups'), 'maxFailureRatio', 'minSamples', 'gate', 'rollout')
  local maxRatio = tonumber(g[1] or '')
  if maxRatio then
    local samples = up + fa - tonumber(st.budgetSamples0 or '0')
    local failed = fa - tonumber(st.budgetFailed0 or '0')
    if samples > 0 and samples >= tonumber(g[2] or '0') and failed / samples > maxRatio then
      redis.call('HSET', status, 'state', 'paused', 'pausedReason', 'FAILURE_BUDGET_EXCEEDED', 'pausedAt', now,
        'breachFailed', failed, 'breachSamples', samples, 'breachRatio', string.format('%.4f', failed / samples),
        'updatedAt', now)
      redis.call('PUBLISH', channel, cjson.encode({ id = c, state = 'paused', reason = 'FAILURE_BUDGET_EXCEEDED' }))
      return
    end
  end
  local limit = tonumber(st.rolloutLimit or '')
  if not limit or up + sk + fa < limit then return end
  local steps = cjson.decode(g[4])
  local step = tonumber(st.rolloutStep or '0')
  if step + 1 >= #steps then return end
  if g[3] == 'manual' then
    redis.call('HSET', status, 'state', 'gated', 'updatedAt', now)
    redis.call('PUBLISH', channel, cjson.encode({ id = c, state = 'gated', step = step }))
  else
    redis.call('HSET', status, 'rolloutStep', step + 1, 'rolloutLimit', steps[step + 2], 'updatedAt', now)
    back_on_ring(c)
    redis.call('PUBLISH', channel, cjson.encode({ id = c, state = 'running', step = step + 1 }))
  end
end

-- The status fields the completion and rollout checks read, in one HMGET (they run after every
-- counted outcome).
local STATUS_FIELDS = { 'state', 'total', 'upgraded', 'skipped', 'failed', 'would-upgrade', 'would-skip', 'would-fail',
  'discovering', 'rolloutLimit', 'rolloutStep', 'budgetFailed0', 'budgetSamples0' }
local DONE_FIELDS = { 'upgraded', 'skipped', 'failed', 'would-upgrade', 'would-skip', 'would-fail' }

local function read_status(c)
  local v = redis.call('HMGET', ck(c, 'status'), unpack(STATUS_FIELDS))
  local st = {}
  for i, f in ipairs(STATUS_FIELDS) do st[f] = v[i] end
  return st
end

local CAMPAIGN_KEYS = { 'status', 'spec', 'outcomes', 'outbox', 'groups', 'attempts', 'ready', 'gstate' }

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
  drop_limits(c)
  local retention = tonumber(redis.call('HGET', ck(c, 'groups'), 'retentionMs') or '0')
  if retention > 0 then
    for _, k in ipairs(CAMPAIGN_KEYS) do redis.call('PEXPIRE', ck(c, k), retention) end
  end
  redis.call('PUBLISH', channel, cjson.encode({ id = c, state = final, ended = true }))
  return true
end

-- Records a target's outcome once and counts it, and every outcome but an upgrade by its reason
-- too (`r:<CODE>`), so a dashboard shows why targets failed or were skipped without reading the
-- report. The marker (which targets have an outcome: the dedup, and what `retry` and the report
-- index by) stays in this slot; the record goes to the outbox, from which workers copy it to the
-- campaign's own slot (docs/ARCHITECTURE.md, "Outcome records"). `seq` (holder_seq, next_seq)
-- orders the records of a campaign, so a late copy of an older record never replaces a newer one.
-- Returns the record's seq if new, 0 if recorded before.
local function record_outcome(c, seq, targetKey, outcome, reason, recordJson, now, channel)
  if redis.call('HSETNX', ck(c, 'outcomes'), targetKey, seq .. '|' .. outcome .. '|' .. reason) == 0 then return 0 end
  redis.call('HSET', ck(c, 'outbox'), seq, recordJson .. '\n' .. targetKey)
  redis.call('SADD', S .. 'outboxes', c)
  local status = ck(c, 'status')
  redis.call('HINCRBY', status, outcome, 1)
  if reason ~= 'UPGRADED' then redis.call('HINCRBY', status, 'r:' .. reason, 1) end
  redis.call('HSET', status, 'updatedAt', now)
  local st = read_status(c)
  if not complete_if_done(c, now, channel, st) then rollout_check(c, now, channel, st) end
  return seq
end

-- A record's seq: the number of the holder (the dispatch) that ran the target, which grows with
-- every dispatch of the campaign; a target recorded without one (a cancelled campaign's drain)
-- draws the next number from the same counter.
local function holder_seq(holder)
  return tonumber(string.match(holder, '%.(%d+)$'))
end

local function next_seq(c)
  return redis.call('HINCRBY', ck(c, 'groups'), 'seq', 1)
end

-- The record of a target that never ran because its campaign was cancelled.
local function cancelled_record(t, now)
  return cjson.encode({ target = t, outcome = 'skipped', reason = 'CANCELLED', attempts = 0, error = cjson.null, at = now })
end

-- A run takes over a dispatched holder with its token (claim-1.lua; finish-1.lua for the target
-- it picked for the same worker). Returns claim-1.lua's output. `fresh`: the holder was picked
-- in this same script call, whose dispatch step served only a running campaign on an unpaused
-- connection and set the lease and slots to now + leaseMs already; those checks and writes are
-- then skipped (they are on every continued target's path).
local function claim_run(holder, token, leaseMs, targetKey, channel, now, fresh)
  local v = redis.call('HGET', S .. 'inflight', holder)
  if not v then return { 0 } end
  local gid, held, entry = parse_inflight(v)
  local c = campaign_of(holder)

  if not fresh then
    local expiry = tonumber(redis.call('ZSCORE', S .. 'leases', holder) or '0')
    if expiry <= now then
      release(holder)
      requeue(c, gid, entry, 0, now)
      return { 0 }
    end
  end
  if held ~= '' and held ~= token then return { 2 } end

  if redis.call('HEXISTS', ck(c, 'outcomes'), targetKey) == 1 then
    release(holder)
    redis.call('HINCRBY', ck(c, 'status'), 'active', -1)
    return { 4 }
  end

  if not fresh then
    local state = redis.call('HGET', ck(c, 'status'), 'state')
    if state == 'cancelled' then
      release(holder)
      redis.call('HINCRBY', ck(c, 'status'), 'active', -1)
      record_outcome(c, holder_seq(holder), targetKey, 'skipped', 'CANCELLED', cancelled_record(cjson.decode(entry), now), now, channel)
      return { 4 }
    end
    if state ~= 'running' then
      release(holder)
      requeue(c, gid, entry, 0, now)
      return { 3, 0 }
    end

    local conn = redis.call('HGET', ck(c, 'groups'), 'conn')
    local pausedUntil = tonumber(redis.call('HGET', S .. 'pause', conn) or '0')
    if pausedUntil > now then
      release(holder)
      requeue(c, gid, entry, pausedUntil, now)
      return { 3, pausedUntil }
    end

    local newExpiry = now + leaseMs
    redis.call('ZADD', S .. 'leases', newExpiry, holder)
    for _, k in ipairs(group_keys(c, gid)) do
      redis.call('ZADD', S .. 'slot:' .. k[1], 'XX', newExpiry, holder)
    end
  end
  redis.call('HSET', S .. 'inflight', holder, gid .. '|' .. token .. '|' .. entry)
  local a = redis.call('HMGET', ck(c, 'attempts'), targetKey, 'ra:' .. targetKey, 'e:' .. targetKey)
  return { 1, tonumber(a[1] or '0'), tonumber(a[2] or '0'), a[3] or '' }
end

-- The dispatch step, shared by dispatch-1.lua and finish-1.lua (a finished target's slot goes
-- to the next one in the same call). Returns { now, nextWakeMs, reclaimed, holder, entry, ... }.
-- `maintain` runs the housekeeping first (reclaim, due retries and delays) and reports the next
-- due time; finish-1.lua leaves it to the dispatcher's timer and only picks (nextWakeMs -1), as
-- every command in a script counts on the hot path.
local function dispatch_step(maxPicks, leaseMs, now, maintain)
  local reclaimed = 0
  if maintain then
    -- 1. Expired leases: the holder died, froze, or its job never started. Its slots return now.
    for _, holder in ipairs(redis.call('ZRANGEBYSCORE', S .. 'leases', '-inf', now, 'LIMIT', 0, 200)) do
      local c = campaign_of(holder)
      local gid, _, entry = release(holder)
      if gid then
        requeue(c, gid, entry, 0, now)
        redis.call('HINCRBY', ck(c, 'status'), 'reclaimed', 1)
        reclaimed = reclaimed + 1
      end
    end

    -- 2. Retries whose backoff has passed go back to the head of their group.
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', S .. 'retry', '-inf', now, 'LIMIT', 0, 500)) do
      redis.call('ZREM', S .. 'retry', m)
      local c, gid, entry = string.match(m, '^([^|]*)|(%d+)|(.*)$')
      if redis.call('EXISTS', ck(c, 'status')) == 1 then
        redis.call('LPUSH', ck(c, 'g:' .. gid), entry)
        redis.call('HINCRBY', ck(c, 'status'), 'admitted', -1)
        make_ready(c, gid)
      end
    end

    -- 3. Groups whose rate window or Retry-After pause has passed.
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', S .. 'delayed', '-inf', now, 'LIMIT', 0, 500)) do
      redis.call('ZREM', S .. 'delayed', m)
      local c, gid = string.match(m, '^(.*)|(%d+)$')
      if redis.call('HGET', ck(c, 'gstate'), gid) == 'd' then make_ready(c, gid) end
    end

  end

  -- 4. The window: BullMQ never holds more reserved or running targets than the live workers
  --    can run at once, so a reserved target starts at once and its slot is not idle. The sum
  --    of live workers' concurrency is kept by renew-1.lua.
  local capacity = tonumber(redis.call('GET', S .. 'capacity') or '0')
  local budget = math.min(maxPicks, capacity - redis.call('HLEN', S .. 'inflight'))

  -- Tries one ready group. Returns the picked entry, or nil after moving the group where it
  -- waits. Keys that had room but were not used wake one waiter each, so a slot is never left
  -- free while a group that could use it sleeps. A scoped key's figures are its capacity
  -- record's (the strictest among live campaigns); on a registry key the group keeps to its own
  -- concurrency, and its key's clock runs at the registry's rate ('=s').
  local function try_group(c, gid)
    local gstate = ck(c, 'gstate')
    local status = ck(c, 'status')
    local keys = group_keys(c, gid)
    local tag = c .. '|' .. gid
    local function wake_unused(upto)
      for j = 1, upto do wake_one(keys[j][1]) end
    end

    local conn = redis.call('HGET', ck(c, 'groups'), 'conn')
    local pausedUntil = tonumber(redis.call('HGET', S .. 'pause', conn) or '0')
    if pausedUntil > now then
      redis.call('HSET', gstate, gid, 'd')
      redis.call('ZADD', S .. 'delayed', pausedUntil, tag)
      return nil
    end

    local limit = {}
    for i, k in ipairs(keys) do
      -- own: the spacing of this campaign's own clock on a registry key whose rate it lowered.
      local key, concurrency, spacing, own = k[1], k[2], k[3] > 0 and k[4] / k[3] or 0, 0
      if k[5] == 1 then
        local cap = redis.call('HMGET', S .. 'cap:' .. key, '=c', '=r')
        local least, longest = tonumber(cap[1] or '0'), tonumber(cap[2] or '0')
        if least > 0 and (concurrency == 0 or least < concurrency) then concurrency = least end
        if longest > spacing then spacing = longest end
      elseif spacing > 0 then
        local shortest = tonumber(redis.call('HGET', S .. 'cap:' .. key, '=s') or '0')
        if shortest > 0 and shortest < spacing then spacing, own = shortest, spacing end
      end
      limit[i] = { concurrency, spacing, own }
      local slot = S .. 'slot:' .. key
      redis.call('ZREMRANGEBYSCORE', slot, '-inf', now)
      if concurrency > 0 and redis.call('ZCARD', slot) >= concurrency then
        wait_on(c, gid, key)
        wake_unused(i - 1)
        return nil
      end
      if spacing > 0 then
        -- GCRA: starts on a key are spaced perMs/max apart (a scoped key: the longest spacing
        -- among its live campaigns), so no window of perMs ever holds more than max and there
        -- is no burst at a window's edge.
        local tat = tonumber(redis.call('GET', S .. 'rate:' .. key) or '0')
        if own > 0 then tat = math.max(tat, tonumber(redis.call('GET', ck(c, 'rate:' .. key)) or '0')) end
        if tat > now then
          redis.call('HSET', gstate, gid, 'd')
          redis.call('ZADD', S .. 'delayed', math.ceil(tat), tag)
          wake_unused(i - 1)
          return nil
        end
      end
    end

    local list = ck(c, 'g:' .. gid)
    local entry = redis.call('LPOP', list)
    if not entry then
      redis.call('HDEL', gstate, gid)
      wake_unused(#keys)
      return nil
    end

    local holder = c .. '.' .. redis.call('HINCRBY', ck(c, 'groups'), 'seq', 1)
    local expiry = now + leaseMs
    -- Measured from the previous start, not from now, when the dispatcher woke a little late:
    -- lateness does not pile up (at most half a start more per window, never more). A key's
    -- first start opens its clock without slack.
    local function advance(rate, interval, perMs)
      local stored = redis.call('GET', rate)
      local tat = stored and math.max(tonumber(stored), now - interval / 2) + interval or now + interval
      redis.call('SET', rate, string.format('%.3f', tat), 'PX', math.ceil(math.max(interval, perMs)) + 1000)
    end
    for i, k in ipairs(keys) do
      redis.call('ZADD', S .. 'slot:' .. k[1], expiry, holder)
      if limit[i][2] > 0 then advance(S .. 'rate:' .. k[1], limit[i][2], k[4]) end
      if limit[i][3] > 0 then advance(ck(c, 'rate:' .. k[1]), limit[i][3], k[4]) end
    end
    redis.call('HSET', S .. 'inflight', holder, gid .. '||' .. entry)
    redis.call('ZADD', S .. 'leases', expiry, holder)
    redis.call('HINCRBY', status, 'pending', -1)
    redis.call('HINCRBY', status, 'active', 1)
    redis.call('HINCRBY', status, 'admitted', 1)
    if redis.call('LLEN', list) == 0 then
      redis.call('HDEL', gstate, gid)
      return holder, entry
    end
    -- The group has more: if this pick filled one of its keys, it waits on that key now
    -- rather than being looked at again for nothing.
    for i, k in ipairs(keys) do
      if limit[i][1] > 0 and redis.call('ZCARD', S .. 'slot:' .. k[1]) >= limit[i][1] then
        wait_on(c, gid, k[1])
        return holder, entry
      end
    end
    redis.call('RPUSH', ck(c, 'ready'), gid)
    return holder, entry
  end

  local out = { now, -1, reclaimed }
  local picked = 0
  local looks = 0
  while picked < budget and looks < budget * 4 + 64 do
    local c = redis.call('LPOP', S .. 'ring')
    if not c then break end
    redis.call('SREM', S .. 'inring', c)
    -- A campaign that is not running leaves the ring with its groups as they are; resuming it
    -- puts it back. Its targets wait in Redis, costing no worker and no BullMQ place.
    local st = redis.call('HMGET', ck(c, 'status'), 'state', 'rolloutLimit', 'admitted')
    -- A rollout step's targets are all admitted: the rest wait for the step to finish.
    local running = st[1] == 'running' and (not st[2] or tonumber(st[3] or '0') < tonumber(st[2]))
    local gid = running and redis.call('LPOP', ck(c, 'ready'))
    if gid then
      looks = looks + 1
      local holder, entry = try_group(c, gid)
      if holder then
        out[#out + 1] = holder
        out[#out + 1] = entry
        picked = picked + 1
      end
    end
    if running and redis.call('LLEN', ck(c, 'ready')) > 0 and redis.call('SADD', S .. 'inring', c) == 1 then
      redis.call('RPUSH', S .. 'ring', c)
    end
  end

  if maintain then
    local nextWake = -1
    for _, z in ipairs({ 'leases', 'retry', 'delayed' }) do
      local first = redis.call('ZRANGE', S .. z, 0, 0, 'WITHSCORES')
      if first[2] then
        local at = tonumber(first[2])
        if nextWake < 0 or at < nextWake then nextWake = at end
      end
    end
    out[2] = nextWake
  end
  return out
end
