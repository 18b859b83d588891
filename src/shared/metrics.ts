import { Queue } from 'bullmq';
import type { RedisClient } from './redis.js';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { DEFAULTS } from './config.js';
import { campaignOfHolder } from './jobs.js';
import { campaignIndexKey, campaignKeys, schedulerKeys, TARGET_QUEUE } from './keys.js';
import { redisTimeMs } from './redis.js';

/**
 * Prometheus metrics (prom-client). Two kinds (docs/OBSERVABILITY.md lists every one):
 * - fleet gauges read from Redis at scrape time (`FleetGauges`, this file): the same figures
 *   from every process that exposes them, so aggregate them with max(), not sum();
 * - process-local counters of a worker (src/worker/metrics/).
 */
export interface MetricsEndpoint {
  readonly contentType: string;
  /** The text exposition of every metric, collected now. */
  render(): Promise<string>;
}

export interface FleetGaugeOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  /** Limit keys reported by name (the most used); the others are summed into one series. */
  readonly topKeys?: number;
  /** Newest campaigns read per scrape. */
  readonly maxCampaigns?: number;
  /** A scrape's Redis reads give up after this long; `upshift_metrics_redis_up` is then 0. */
  readonly timeoutMs?: number;
}

/** States a campaign can be in; each is reported (0 when none), so dashboards see every series. */
const CAMPAIGN_STATES = ['running', 'paused', 'gated', 'completed', 'cancelled'] as const;
/** BullMQ job states of the target queue worth watching (failed jobs are worker bugs, kept 1,000). */
const QUEUE_STATES = ['wait', 'active', 'delayed', 'prioritized', 'failed'] as const;

type PipelineResult = [Error | null, unknown][] | null;

function values(res: PipelineResult): unknown[] {
  if (res === null) throw new Error('pipeline aborted');
  return res.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

/**
 * Gauges derived from Redis, read once per scrape in a bounded number of commands and three
 * round trips at most: the newest `maxCampaigns` status hashes (state, pending, active), the
 * in-flight hash with one HMGET of group limits per campaign in flight (slots in use per limit
 * key: every in-flight holder holds one slot on each of its group's keys), the Retry-After pause
 * hash, and BullMQ's job counts. Concurrent scrapes share one read.
 */
export class FleetGauges {
  private readonly campaigns: Gauge<'state'>;
  private readonly pending: Gauge<'campaign_state'>;
  private readonly active: Gauge<'campaign_state'>;
  private readonly queueJobs: Gauge<'state'>;
  private readonly slots: Gauge<'key'>;
  private readonly slotLimit: Gauge<'key'>;
  private readonly adaptiveLimit: Gauge<'key'>;
  private readonly slotsOther: Gauge;
  private readonly keysInUse: Gauge;
  private readonly pausedConnections: Gauge;
  private readonly notificationsPending: Gauge;
  private readonly redisUp: Gauge;
  private readonly topKeys: number;
  private readonly maxCampaigns: number;
  private readonly timeoutMs: number;
  private queue: Queue | undefined;
  private reading: Promise<void> | undefined;

  constructor(
    registry: Registry,
    private readonly opts: FleetGaugeOptions,
  ) {
    this.topKeys = opts.topKeys ?? DEFAULTS.metricsTopKeys;
    this.maxCampaigns = opts.maxCampaigns ?? DEFAULTS.metricsMaxCampaigns;
    this.timeoutMs = opts.timeoutMs ?? DEFAULTS.metricsRedisTimeoutMs;
    const registers = [registry];
    this.campaigns = new Gauge({
      name: 'upshift_campaigns',
      help: `Campaigns by state (the newest ${this.maxCampaigns} in Redis).`,
      labelNames: ['state'],
      registers,
    });
    this.pending = new Gauge({
      name: 'upshift_campaign_targets_pending',
      help: 'Targets waiting to start (in their groups, or parked for a retry or a Retry-After), by campaign state.',
      labelNames: ['campaign_state'],
      registers,
    });
    this.active = new Gauge({
      name: 'upshift_campaign_targets_active',
      help: 'Targets dispatched and not finished (holding their slots), by campaign state.',
      labelNames: ['campaign_state'],
      registers,
    });
    this.queueJobs = new Gauge({
      name: 'upshift_queue_jobs',
      help: `Jobs in the BullMQ queue "${TARGET_QUEUE}" by state.`,
      labelNames: ['state'],
      registers,
    });
    this.slots = new Gauge({
      name: 'upshift_limit_slots_in_use',
      help: `Slots taken on a limit key value, for the ${this.topKeys} most used keys (the rest: upshift_limit_slots_in_use_other).`,
      labelNames: ['key'],
      registers,
    });
    this.slotLimit = new Gauge({
      name: 'upshift_limit_concurrency',
      help: 'The concurrency limit of a key reported in upshift_limit_slots_in_use: the smallest figure among the campaigns holding it, which a connection-scoped key is held to.',
      labelNames: ['key'],
      registers,
    });
    this.adaptiveLimit = new Gauge({
      name: 'upshift_limit_adaptive_concurrency',
      help: 'The current figure of an adaptive concurrency limit (shared by every worker), for the keys reported in upshift_limit_slots_in_use that have one.',
      labelNames: ['key'],
      registers,
    });
    this.slotsOther = new Gauge({
      name: 'upshift_limit_slots_in_use_other',
      help: 'Slots taken on limit keys not reported by name in upshift_limit_slots_in_use.',
      registers,
    });
    this.keysInUse = new Gauge({
      name: 'upshift_limit_keys_in_use',
      help: 'Limit key values with at least one slot taken.',
      registers,
    });
    this.pausedConnections = new Gauge({
      name: 'upshift_connections_paused',
      help: 'Connections (base URL + credential name) paused by a Retry-After right now.',
      registers,
    });
    this.notificationsPending = new Gauge({
      name: 'upshift_notifications_pending',
      help: 'Webhook deliveries not yet delivered or given up: due, being sent, or waiting for a retry (<p>:sched:notify-due).',
      registers,
    });
    this.redisUp = new Gauge({
      name: 'upshift_metrics_redis_up',
      help: 'Whether the last scrape could read Redis (1) or not (0: the Redis-derived gauges are empty).',
      registers,
    });
  }

  /** Reads Redis and sets the gauges; never throws (a failed read clears them and sets redis_up 0). */
  async collect(): Promise<void> {
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), this.timeoutMs);
    });
    try {
      await Promise.race([this.reading, timedOut]);
      this.redisUp.set(1);
    } catch {
      for (const g of [this.campaigns, this.pending, this.active, this.queueJobs, this.slots, this.slotLimit, this.adaptiveLimit]) g.reset();
      for (const g of [this.slotsOther, this.keysInUse, this.pausedConnections, this.notificationsPending]) g.reset();
      this.redisUp.set(0);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the queue handle used for BullMQ's counts (the Redis connection is the caller's). */
  async close(): Promise<void> {
    await this.queue?.close();
    this.queue = undefined;
  }

  private async read(): Promise<void> {
    const { redis, prefix } = this.opts;
    const sched = schedulerKeys(prefix);
    const [ids, inflight, pauses, time, notifyDue] = values(
      await redis
        .pipeline()
        .zrevrange(campaignIndexKey(prefix), 0, this.maxCampaigns - 1)
        .hgetall(sched.inflight)
        .hgetall(sched.pause)
        .time()
        .zcard(sched.notifyDue)
        .exec(),
    ) as [string[], Record<string, string>, Record<string, string>, [string, string], number];
    this.notificationsPending.set(notifyDue);

    // In-flight holders ('<campaign>.<n>' -> '<gid>|<token>|<entry>'), counted per campaign and group.
    const held = new Map<string, Map<string, number>>();
    for (const [holder, v] of Object.entries(inflight)) {
      const c = campaignOfHolder(holder);
      const gid = v.slice(0, v.indexOf('|'));
      let groups = held.get(c);
      if (!groups) held.set(c, (groups = new Map()));
      groups.set(gid, (groups.get(gid) ?? 0) + 1);
    }

    const second = redis.pipeline();
    for (const id of ids) second.hmget(campaignKeys(prefix, id).status, 'state', 'pending', 'active');
    for (const [c, groups] of held) second.hmget(campaignKeys(prefix, c).groups, ...groups.keys());
    this.queue ??= this.openQueue();
    const [rows, counts] = await Promise.all([second.exec().then(values), this.queue.getJobCounts(...QUEUE_STATES)]);

    this.campaigns.reset();
    this.pending.reset();
    this.active.reset();
    for (const state of CAMPAIGN_STATES) {
      this.campaigns.set({ state }, 0);
      this.pending.set({ campaign_state: state }, 0);
      this.active.set({ campaign_state: state }, 0);
    }
    for (let i = 0; i < ids.length; i++) {
      const [state, pending, active] = rows[i] as (string | null)[];
      if (!state) continue; // expired, not yet pruned from the index
      this.campaigns.inc({ state });
      this.pending.inc({ campaign_state: state }, Number(pending ?? 0));
      this.active.inc({ campaign_state: state }, Number(active ?? 0));
    }

    const inUse = new Map<string, number>();
    const limit = new Map<string, number>();
    const adaptive = new Set<string>();
    let row = ids.length;
    for (const groups of held.values()) {
      const limitsJson = rows[row++] as (string | null)[];
      let i = 0;
      for (const n of groups.values()) {
        const json = limitsJson[i++];
        if (!json) continue;
        for (const [key, concurrency, , , , adapts] of JSON.parse(json) as [string, number, number, number, number, unknown?][]) {
          inUse.set(key, (inUse.get(key) ?? 0) + n);
          if (adapts !== undefined) adaptive.add(key);
          if (concurrency > 0) limit.set(key, Math.min(limit.get(key) ?? Infinity, concurrency));
        }
      }
    }
    const ranked = [...inUse].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.slots.reset();
    this.slotLimit.reset();
    let other = 0;
    const reported: string[] = [];
    ranked.forEach(([key, n], rank) => {
      if (rank >= this.topKeys) {
        other += n;
        return;
      }
      this.slots.set({ key }, n);
      const l = limit.get(key);
      if (l !== undefined) this.slotLimit.set({ key }, l);
      if (adaptive.has(key)) reported.push(key);
    });
    // The figures live in Redis (includes/adaptive.lua): one more read, for the reported keys only.
    const figures = reported.length === 0 ? [] : (values(await redis.pipeline(reported.map((key) => ['hget', sched.adapt(key), 'c'])).exec()) as (string | null)[]);
    this.adaptiveLimit.reset();
    reported.forEach((key, i) => {
      const f = figures[i];
      if (f !== null && f !== undefined) this.adaptiveLimit.set({ key }, Math.floor(Number(f)));
    });
    this.slotsOther.set(other);
    this.keysInUse.set(inUse.size);

    // Pauses are on Redis's clock (the scripts use TIME), so they are compared with it.
    const nowMs = redisTimeMs(time);
    this.pausedConnections.set(Object.values(pauses).filter((until) => Number(until) > nowMs).length);

    this.queueJobs.reset();
    for (const state of QUEUE_STATES) this.queueJobs.set({ state }, counts[state] ?? 0);
  }

  private openQueue(): Queue {
    const queue = new Queue(TARGET_QUEUE, { connection: this.opts.redis, prefix: this.opts.prefix });
    // Connection errors surface as a failed scrape (redis_up 0), not as an unhandled 'error'.
    queue.on('error', () => undefined);
    return queue;
  }
}

/** Metrics of a process serving `/metrics`: what it registers, plus a close for its handles. */
export interface ServedMetrics extends MetricsEndpoint {
  /** Register more metrics here (e.g. the API's own request counters) to serve them too. */
  readonly registry: Registry;
  close(): Promise<void>;
}

export interface ServedMetricsOptions extends FleetGaugeOptions {
  /** Node's process metrics (CPU, memory, event loop, GC) too. */
  readonly processMetrics?: boolean;
}

/**
 * A registry holding the fleet gauges (campaigns by state, pending and active targets, BullMQ
 * queue depth, slots in use per limit key, Retry-After pauses), read from Redis at each render,
 * and optionally Node's process metrics. `redis` stays the caller's; `close()` releases only
 * what this opened.
 */
export function createServedMetrics(opts: ServedMetricsOptions): ServedMetrics {
  const registry = new Registry();
  if (opts.processMetrics) collectDefaultMetrics({ register: registry });
  const fleet = new FleetGauges(registry, opts);
  return {
    contentType: registry.contentType,
    registry,
    async render() {
      await fleet.collect();
      return registry.metrics();
    },
    close: () => fleet.close(),
  };
}

/** The API process's metrics: the fleet gauges and Node's process metrics. */
export function createApiMetrics(opts: FleetGaugeOptions): ServedMetrics {
  return createServedMetrics({ ...opts, processMetrics: true });
}
