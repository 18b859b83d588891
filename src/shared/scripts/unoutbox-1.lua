--[[
  Drop records from a campaign's outbox once archive-1.lua has stored them in the campaign's own
  slot. The outbox is keyed by seq, which is unique to one record, so a target retried and
  recorded again meanwhile keeps its newer record here until that one is archived too.
  When the outbox is empty the campaign leaves `<p>:sched:outboxes` — unless it has ended and
  its records hash does not have the retention expiry yet: then the caller sets it (PEXPIREAT,
  the hash being in another slot) and calls again with it. A caller that dies in between leaves
  the campaign in the set, and the next sweep does it.
  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3] the expiry (ms since epoch) the caller has just given the records hash; 0 if none
    ARGV[4..] seqs of the archived records
  Output:
    0         nothing more to do
    expireAt  the campaign has ended: give its records hash this expiry, then call again with it
]]
-- @include "meta"
local c = ARGV[2]
local outbox = ck(c, 'outbox')
if #ARGV >= 4 then redis.call('HDEL', outbox, unpack(ARGV, 4)) end
if redis.call('HLEN', outbox) > 0 then return 0 end
local finishedAt = tonumber(redis.call('HGET', ck(c, 'status'), 'finishedAt') or '')
local retention = tonumber(meta_get(c, 'retentionMs')[1] or '0')
if finishedAt and retention > 0 and tonumber(ARGV[3]) ~= finishedAt + retention then
  return finishedAt + retention
end
redis.call('SREM', S .. 'outboxes', c)
return 0
