--[[
  Add one page of discovered targets to a live campaign: each target not seen before goes to
  the end of its group and counts in `total` and `pending` at once, so workers start on a page
  while the next is fetched. The page's end offset is stored with it, in the same step, so a
  producer that dies resumes after the last page it added.

  Offset paging over a result set that shrinks while we page (executions we upgrade, or that
  end, leave it) skips items, so discovery makes passes: a page that ends a pass starts another
  from offset 0 if the pass found anything new; a pass that found nothing new ends discovery
  (every execution that matches now is in the campaign): the dedup set goes and the campaign
  may complete.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3] offset to resume from after this page
    ARGV[4] 'page'; 'pass-end' when this page ended a pass; 'stop:<why>' when discovery stops
            here whatever it found (why: MAX_TARGETS or DEADLINE, kept as `discoverStopped`)
    ARGV[5] events channel
    ARGV[6..] target key, gid, target JSON, ...

  Output:
    { added, ended }  targets new to the campaign; ended (a flag, not a code) 1 when discovery is over (then
                      `{"id","state","discovered":true}` is published on the events channel)
    NO_SUCH_CAMPAIGN  no such campaign
    WRONG_STATE       the campaign is not discovering (discovery already ended)
]]
-- @include "meta"
-- @include "groups"
-- @include "limits"
-- @include "outcomes"

local c = ARGV[2]
local status = ck(c, 'status')
local state = redis.call('HGET', status, 'state')
if not state then return CODES.NO_SUCH_CAMPAIGN end
if redis.call('HEXISTS', status, 'discovering') == 0 then return CODES.WRONG_STATE end
local now = now_ms()
local added = 0
for i = 6, #ARGV, 3 do
  if redis.call('SADD', ck(c, 'seen'), ARGV[i]) == 1 then
    local gid = ARGV[i + 1]
    redis.call('RPUSH', ck(c, 'g:' .. gid), ARGV[i + 2])
    make_ready(c, gid)
    added = added + 1
  end
end
-- Groups first seen in this page (gids are numbered in order) join the capacity records.
local known = tonumber(meta_get(c, 'capgid')[1] or '0')
local top = known - 1
for i = 7, #ARGV, 3 do
  local gid = tonumber(ARGV[i])
  if gid > top then top = gid end
end
if top >= known then
  local gids = {}
  for gid = known, top do gids[#gids + 1] = tostring(gid) end
  use_limits(c, gids)
  redis.call('HSET', meta_key(c), 'capgid', top + 1)
end
redis.call('HINCRBY', status, 'total', added)
redis.call('HINCRBY', status, 'pending', added)
local passAdded = redis.call('HINCRBY', status, 'discoverPassAdded', added)
redis.call('HSET', status, 'discoverStart', ARGV[3], 'updatedAt', now)
local ended = 0
local stopped = string.match(ARGV[4], '^stop:(.+)$')
if ARGV[4] == 'pass-end' or stopped then
  if not stopped then redis.call('HINCRBY', status, 'discoverPasses', 1) end
  if passAdded == 0 or stopped then
    if stopped then redis.call('HSET', status, 'discoverStopped', stopped) end
    redis.call('HDEL', status, 'discovering', 'discoverStart', 'discoverPassAdded')
    redis.call('HSET', status, 'discoveredAt', now)
    redis.call('UNLINK', ck(c, 'seen'))
    complete_if_done(c, now, ARGV[5])
    -- Announced, so a reader waiting for discovery to end (the dashboard, a test) need not poll.
    redis.call('PUBLISH', ARGV[5], cjson.encode({ id = c, state = redis.call('HGET', status, 'state'), discovered = true }))
    ended = 1
  else
    redis.call('HSET', status, 'discoverStart', 0, 'discoverPassAdded', 0)
  end
end
if added > 0 then redis.call('PUBLISH', ARGV[5], cjson.encode({ id = c, state = state })) end
return { added, ended }
