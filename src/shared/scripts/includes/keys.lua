--[[
  keys: the key names every scheduler script derives from the prefix, and the clock.
  Provides: P, S, ck, now_ms, campaign_of, holder_seq, parse_inflight. Needs no include.

  Every script that includes this takes ARGV[1] = the key prefix (UPSHIFT_PREFIX) and derives
  its keys from it, as BullMQ's scripts derive a job's keys from the queue's prefix; the same
  names are built in TypeScript by src/shared/keys.ts. Each script declares one key, KEYS[1] =
  <p>:sched:ring, the routing key: a Redis Cluster client routes the call to the node of the
  prefix's hash tag slot, where every key the script touches lives (docs/SCALING.md).

  State (see docs/ARCHITECTURE.md, "Scheduler"):
    <p>:campaign:<c>:g:<gid>   LIST    pending target entries (target JSON) of one group
    <p>:campaign:<c>:groups    HASH    gid -> JSON [[key, concurrency, rateMax, ratePerMs, scope], ...]
                                       (scope 1: the connection's own key value, `<connection>/<value>`;
                                       0 or absent: the registry's). Nothing else (meta.lua: a
                                       campaign written before :meta existed has its meta here too)
    <p>:campaign:<c>:meta      HASH    written by the producer before commit: 'conn' -> connection
                                       id, 'tk' -> target key fields, 'retentionMs', and a rollout's
                                       'rollout', 'minSamples', 'gate', 'maxFailureRatio', 'onBreach',
                                       'notify' (the spec's notify JSON, when it has one); the
                                       scheduler's: 'seq' -> holder counter, 'capgid' -> gids
                                       0 .. capgid-1 are in the capacity records (use_limits),
                                       'ev:undo-started' -> 1 once
                                       that event is recorded (notify.lua)
    <p>:campaign:<c>:notify    HASH    webhook events: 'e:<n>' -> the event's body (JSON, sent and
                                       signed as is); 'd:<n>|<notifier>' -> its delivery record
                                       (JSON: status pending|delivered|failed, attempts, lastError,
                                       createdAt, updatedAt, deliveredAt, nextAt)
    <p>:campaign:<c>:ready     LIST    gids that may have a runnable target (round robin)
    <p>:campaign:<c>:gstate    HASH    gid -> 'r' (in ready) | 'b' (waiting for a key) | 'd' (in delayed)
    <p>:campaign:<c>:winpark   HASH    gid -> n: a 'd' group in delayed until its maintenance window
                                       opens, n targets counted in waitingForWindow (windows.lua)
    <p>:campaign:<c>:winwait   HASH    gid -> zone: a 'd' group waiting for setWindows-1.lua to store
                                       its zone's next interval (windows.lua)
    <p>:campaign:<c>:win       HASH    zone -> '<from>|<until>': its maintenance window interval (ms,
                                       window clock), written by the producer and setWindows-1.lua
    <p>:campaign:<c>:w:<key>   LIST    gids of this campaign waiting for a slot on the key (FIFO)
    <p>:campaign:<c>:limitkeys SET     key values the campaign has figures on or may wait for: what
                                       its end takes back (drop_limits)
    <p>:campaign:<c>:rate:<key> STRING the campaign's own clock on a registry key whose rate it lowered
    <p>:campaign:<c>:attempts  HASH    target key -> attempts made; 'ra:' .. target key -> Retry-After waits;
                                       'u:' .. target key -> the pre-image a run kept before its write
                                       (undo), until its outcome is recorded
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
                                       '=s' -> the shortest spacing (limits.lua)
    <p>:sched:adapt:<key>      HASH    a key's adaptive concurrency ('c' figure, 'base' latency ms, the
                                       round, 'cut' last cut ms, ...: adaptive.lua): read by dispatch, moved by
                                       every call ending on the key (adaptive.lua); expires when idle
    <p>:sched:waiting:<key>    LIST    campaigns with a group waiting for a slot on the key, each once
                                       (exactly while its `:w:<key>` list is not empty): round robin
    <p>:sched:delayed          ZSET    '<c>|<gid>' -> when it may run again (rate window, Retry-After)
    <p>:sched:retry            ZSET    '<c>|<gid>|<entry>' -> when a failed attempt is tried again
    <p>:sched:pause            HASH    connection id -> no call before this time (Retry-After)
    <p>:sched:workers          ZSET    '<worker id>|<concurrency>' -> registration expiry
    <p>:sched:capacity         STRING  sum of live workers' concurrency (the dispatch window)
    <p>:sched:outboxes         SET     campaigns whose outbox may hold records, or whose records
                                       still need their retention TTL
    <p>:sched:notify-seq       STRING  the webhook event counter: '<c>:<n>' ids are never reused
    <p>:sched:notify-due       ZSET    '<c>:<n>|<notifier>' -> when a webhook delivery is due (while
                                       one is being sent: when its sender's lease ends); removed once
                                       delivered or given up (notifyClaim-1.lua, notifyDone-1.lua)
    <p>:sched:undo-due         ZSET    campaign -> when its failure budget broke with onBreach 'undo':
                                       cancelled here, its undo campaign still to be made by a worker

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

-- A record's seq: the number of the holder (the dispatch) that ran the target, which grows with
-- every dispatch of the campaign; a target recorded without one (a cancelled campaign's drain)
-- draws the next number from the same counter (next_seq, meta.lua).
local function holder_seq(holder)
  return tonumber(string.match(holder, '%.(%d+)$'))
end

local function parse_inflight(v)
  return string.match(v, '^(%d+)|([^|]*)|(.*)$')
end
