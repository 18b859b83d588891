/**
 * Every Redis key Upshift writes, built in one place (the Lua scripts derive the same names from
 * the prefix; see scripts/includes/keys.lua). `prefix` is `UPSHIFT_PREFIX`.
 * The status hash's name is public contract: `<prefix>:campaign:<id>:status`.
 */
export interface CampaignKeys {
  /** Hash: the public progress record (state, counters, timestamps). */
  readonly status: string;
  /** String: the validated spec as JSON (no secrets: only `credentialRef`). */
  readonly spec: string;
  /** Hash: target key -> `<seq>|<outcome>|<reason>`, written once per outcome (the record is in `records`). */
  readonly outcomes: string;
  /** Hash: seq -> `<record JSON>\n<target key>`, records not yet copied to `records`. */
  readonly outbox: string;
  /**
   * Hash: target key -> `<seq>|<record JSON>`, the outcome records. The only key of a campaign in
   * the campaign's own hash tag (`{<id>}`), so on a Redis Cluster the records, the bulk of a
   * finished campaign, spread over the cluster instead of sitting in the deployment's slot.
   */
  readonly records: string;
  /**
   * Hash: gid -> the group's limit keys as JSON, and nothing else (a campaign created before
   * `meta` existed also has its meta fields here, and is read there: scripts/includes/meta.lua).
   */
  readonly groups: string;
  /**
   * Hash: the campaign's meta. Written by the producer before commit (`conn` connection id, `tk`
   * target key fields, `retentionMs`, a rollout's `rollout`/`minSamples`/`gate`/`maxFailureRatio`/`onBreach`,
   * `notify`: the spec's `notify` as JSON when it has one; `sched`: with a schedule, its one zone
   * or `*`, each group's own `z:<gid>` in `groups`); the scheduler's `seq` (holder
   * counter), `capgid` (groups in the capacity records), and
   * `ev:undo-started` (that event was recorded).
   */
  readonly meta: string;
  /** List per group: the pending targets' JSON. */
  group(gid: number): string;
  /**
   * Hash: the campaign's webhook events and their deliveries (README, "Notifications"):
   * `e:<n>` -> the event's body (JSON, signed as is), `d:<n>|<notifier>` -> its delivery record
   * (JSON: status, attempts, lastError, times). Written with the state change that caused the event.
   */
  readonly notify: string;
  /** Hash: target key -> attempts made, `ra:<target key>` -> Retry-After waits. */
  readonly attempts: string;
  /** Hash: maintenance windows, zone -> `<from>|<until>` (ms, window clock): the zone's open or next interval (windows.ts). */
  readonly win: string;
  /** Hash: gid -> zone, groups waiting for a worker to store their zone's next interval (setWindows). */
  readonly winwait: string;
  /** Hash: gid -> n, groups (gstate `d`) parked until their window opens, n targets counted in `waitingForWindow`. */
  readonly winpark: string;
  readonly ready: string;
  readonly gstate: string;
  /** Set: target keys seen while staging (dedup); deleted at commit. */
  readonly seen: string;
}

export function campaignKeys(prefix: string, campaignId: string): CampaignKeys {
  const base = `${prefix}:campaign:${campaignId}`;
  return {
    status: `${base}:status`,
    spec: `${base}:spec`,
    outcomes: `${base}:outcomes`,
    outbox: `${base}:outbox`,
    // The prefix's own hash tag (on a cluster) loses its braces here: the first `{...}` of a key
    // is the one that places it.
    records: `${prefix.replace(/[{}]/g, '')}:campaign:{${campaignId}}:records`,
    groups: `${base}:groups`,
    meta: `${base}:meta`,
    notify: `${base}:notify`,
    group: (gid) => `${base}:g:${gid}`,
    attempts: `${base}:attempts`,
    win: `${base}:win`,
    winwait: `${base}:winwait`,
    winpark: `${base}:winpark`,
    ready: `${base}:ready`,
    gstate: `${base}:gstate`,
    seen: `${base}:seen`,
  };
}

/** Sorted set: every campaign id, scored by its creation time (for `upshift list`). */
export function campaignIndexKey(prefix: string): string {
  return `${prefix}:campaigns`;
}

/** Scheduler keys shared by all campaigns (documented in scripts/includes/keys.lua). */
export function schedulerKeys(prefix: string) {
  const s = `${prefix}:sched:`;
  return {
    /** ZSET: campaign id -> deadline of the producer staging it. */
    staging: `${s}staging`,
    /** LIST: campaigns with ready groups, round robin; also the key every script declares. */
    ring: `${s}ring`,
    inflight: `${s}inflight`,
    leases: `${s}leases`,
    workers: `${s}workers`,
    pause: `${s}pause`,
    retry: `${s}retry`,
    /** SET: campaigns whose outbox may hold records not yet archived (or whose records need their TTL). */
    outboxes: `${s}outboxes`,
    /** ZSET: campaigns whose failure budget broke with `onBreach: "undo"` -> when; until a worker has made their undo campaign. */
    undoDue: `${s}undo-due`,
    /**
     * ZSET: webhook deliveries not yet delivered or given up, `<campaign>:<n>|<notifier>` -> when
     * one is due (a delivery being sent: when its sender's lease ends). worker/notifier.ts.
     */
    notifyDue: `${s}notify-due`,
    /** STRING: the webhook event counter, one for the deployment, so an event id is never reused. */
    notifySeq: `${s}notify-seq`,
    slot: (key: string) => `${s}slot:${key}`,
    /** HASH: a connection-scoped key's capacity record (campaign -> figures; `=c` smallest concurrency, `=r` longest spacing). */
    cap: (key: string) => `${s}cap:${key}`,
    rate: (key: string) => `${s}rate:${key}`,
    /** HASH: a key's adaptive concurrency (`c` the figure, `base` latency ms, the current round, `cut`, ...; includes/adaptive.lua). */
    adapt: (key: string) => `${s}adapt:${key}`,
  } as const;
}

/** The BullMQ queue every dispatched target goes through (BullMQ adds `<prefix>:<queue>:` keys). */
export const TARGET_QUEUE = 'targets';

/**
 * Pub/sub channel where campaign state changes are announced (`{"id","state"}` JSON): a new
 * `running` campaign wakes the workers' dispatchers, `completed` tells waiting services.
 */
export function eventsChannel(prefix: string): string {
  return `${prefix}:campaign-events`;
}
