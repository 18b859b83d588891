import { z } from 'zod';
import { InputError } from './errors.js';

/**
 * Every tunable of Upshift, with its default, in one place. Read from the environment once
 * (`loadConfig`), validated with zod and frozen; components take the parts they need.
 * Units are in the names.
 */
export const DEFAULTS = Object.freeze({
  redisUrl: 'redis://127.0.0.1:6379',
  prefix: 'upshift',
  logLevel: 'info',
  /** Worker: jobs processed at once per process. */
  concurrency: 10,
  /** Worker: how long a job's lock lasts before BullMQ may consider it stalled. */
  lockDurationMs: 30_000,
  /** Worker: how often stalled jobs are looked for. */
  stalledIntervalMs: 30_000,
  /**
   * Worker: times BullMQ re-delivers a job from a dead worker before failing it. A re-delivered
   * job only finds its lease gone (the scheduler requeues the target itself), so one is enough.
   */
  maxStalledCount: 1,
  /**
   * Scheduler: a slot is a lease this long, renewed by its holder every third of it. A killed
   * worker's slots return within this time; a live worker that cannot renew aborts its call first.
   */
  leaseMs: 30_000,
  /**
   * Worker: how often it moves outcome records that a killed worker left in the deployment's
   * slot to their campaign's own (shared/records.ts). Live workers move their own at once.
   */
  outboxSweepMs: 5_000,
  /** Worker: outcome records finishing within this long of each other are archived together. */
  archiveBatchMs: 20,
  /** Scheduler: most targets one dispatch step picks. */
  dispatchBatch: 256,
  /**
   * Worker: most run ends recorded in one `finishMany` call (worker/finisher.ts: the runs that
   * ended while the previous call was on its way go together).
   */
  finishGroupMax: 64,
  /** Worker: `finishMany` calls on their way at once (worker/finisher.ts). */
  finishCallsInFlight: 2,
  /** Worker: Retry-After waits one target may sit out before it fails as RETRIES_EXHAUSTED. */
  maxRetryAfterWaits: 20,
  /** Worker: bounded wait for in-flight jobs on SIGTERM/SIGINT. */
  shutdownTimeoutMs: 30_000,
  /**
   * Worker: a platform call passes the send gate only within this long of a request to Redis
   * that found its connection not paused by a Retry-After (a claim, or a check made for the
   * call), so no call is written later than this after a 429 was recorded, bar the OS or the
   * garbage collector suspending the worker at the write (src/worker/pauses.ts, RELIABILITY.md).
   */
  pauseGateMs: 100,
  /** Worker: longest Retry-After honoured; longer asks are clipped to this. */
  maxRetryAfterMs: 300_000,
  /** Worker: cap on one exponential backoff step. */
  maxBackoffMs: 600_000,
  /** Spec: the range a connection's `timeoutMs` may take (checked at enqueue, clamped again by the worker). */
  minCallTimeoutMs: 100,
  maxCallTimeoutMs: 600_000,
  /** HTTP: a platform call's timeout (connect to last byte) when the spec names none. */
  callTimeoutMs: 10_000,
  /** HTTP: answer bodies are read up to this size, then cut off. */
  maxResponseBytes: 1024 * 1024,
  /** HTTP: idle keep-alive sockets per origin are kept this long. */
  keepAliveTimeoutMs: 30_000,
  /**
   * Producer: longest NDJSON line (a target, or the API's spec line), in bytes without its line
   * ending. A line is refused as soon as it passes this, so a hostile line costs at most this
   * much memory and reading, never its whole length.
   */
  maxTargetLineBytes: 1024 * 1024,
  /** Producer: targets staged per Redis round trip. */
  stageChunkSize: 1000,
  /** Discovery: most targets one campaign's search may add (spec `targets.discover.maxTargets`). */
  discoveryMaxTargets: 1_000_000,
  /** Discovery: how long one producer pages before it stops adding (spec `targets.discover.deadlineMs`). */
  discoveryDeadlineMs: 3_600_000,
  /**
   * Discovery: results asked per search page (spec `targets.discover.pageSize`); also the most
   * the spec accepts, the largest page Conductor's search answers.
   */
  discoveryPageSize: 5000,
  /** Spec: `retry.attempts` when the spec names none. */
  retryAttempts: 5,
  /** Spec: `retry.backoffMs` when the spec names none. */
  retryBackoffMs: 1000,
  /** Worker: webhook deliveries one worker sends at once (separate from its target concurrency). */
  notifyConcurrency: 8,
  /** Worker: a webhook delivery's timeout (connect to last byte of the answer). */
  notifyTimeoutMs: 10_000,
  /**
   * Worker: the wait after a webhook delivery's first failed attempt, doubled after each one up
   * to `notifyMaxBackoffMs`: 10 s, 20 s, ... 1 h, then hourly, about 30 attempts in 24 h.
   */
  notifyBackoffMs: 10_000,
  notifyMaxBackoffMs: 3_600_000,
  /** Worker: a webhook delivery not delivered this long after its event is given up (failed). */
  notifyMaxAgeMs: 24 * 3_600_000,
  /**
   * Worker: a delivery being sent is due again this long after its timeout would have ended it:
   * how soon another worker takes over the delivery of one that died mid-send.
   */
  notifyLeaseMarginMs: 5_000,
  /**
   * Worker: a notifier counts as having a sender this long after a worker that can send to it
   * last looked for deliveries (each does at least every `outboxSweepMs`); a due delivery to one
   * without is put back by this much rather than holding the head of the due set.
   */
  notifySenderSeenMs: 60_000,
  /** API, CLI: webhook deliveries listed for a campaign, the newest by event number (`truncated` beyond). */
  notificationsListed: 100,
  /** Producer: staged group lists one UNLINK drops when an abandoned staging is discarded. */
  discardUnlinkBatch: 1000,
  /** Cancel: pending targets one cancel step records as skipped (one script call each). */
  cancelBatch: 5000,
  /** Outbox: records one archive step moves when a whole outbox is flushed (sweeps, cancel). */
  outboxFlushBatch: 1000,
  /** Undo: the most an undo campaign's target may carry of what its upgrade kept (JSON length); more fails it `NOT_REVERTIBLE`. */
  maxUndoCarryBytes: 512 * 1024,
  /** Undo: how long `undo` waits for a cancelled campaign's targets in flight before it gives up (`UNDO_WAIT_TIMEOUT`). */
  undoWaitMs: 600_000,
  /** Report and retry: outcome markers read per scan step of a campaign's records. */
  recordScanBatch: 1000,
  /** API: most distinct limit keys one limit-usage read looks at (`GET /campaigns/:id/limits`). */
  limitUsageMaxKeys: 1000,
  /** Worker: campaigns whose spec and connection entry a worker keeps parsed (least recently used go). */
  campaignCacheEntries: 1000,
  /** Worker: failed BullMQ jobs (a worker bug, not a target's failure) kept for a look. */
  failedJobsKept: 1000,
  /** Worker start: keys one SCAN step asks for while looking for pre-round-robin `blocked:` sets. */
  scanCount: 1000,
  /** Producer: a staging campaign whose producer wrote nothing for this long counts as abandoned. */
  stagingTtlMs: 600_000,
  /** A completed or cancelled campaign's data expires this long after it ended. */
  retentionMs: 7 * 24 * 3_600_000,
  /**
   * Spec: most time one target's calls may take, `connection.timeoutMs x retry.attempts`
   * (Retry-After waits and backoff aside), so no campaign can hold a shared slot for days.
   */
  maxTargetCallBudgetMs: 3_600_000,
  /** Report: error text kept per target. */
  maxErrorChars: 500,
  /** Metrics: limit keys reported by name in the slot gauges (the most used); the rest are summed. */
  metricsTopKeys: 20,
  /** Metrics: newest campaigns read per scrape for the campaign and pending-target gauges. */
  metricsMaxCampaigns: 1000,
  /** Metrics: a scrape's Redis reads give up after this long (the other metrics are still served). */
  metricsRedisTimeoutMs: 2000,
  /** API (`upshift serve`): where it listens; loopback unless told otherwise. */
  apiHost: '127.0.0.1',
  apiPort: 3000,
  /** API: largest JSON request body (a spec with inline targets); larger is 413. */
  apiBodyLimitBytes: 16 * 1024 * 1024,
  /** API: largest streamed NDJSON body (spec line + targets); counted as it streams, larger is 413. */
  apiStreamLimitBytes: 1024 * 1024 * 1024,
  /**
   * API: the whole request (headers and body) must have arrived within this, however steadily it
   * drips (Node's own default, which Fastify turns off). Checked every 30 s, so a request may
   * run up to that much longer.
   */
  apiRequestTimeoutMs: 300_000,
  /**
   * API: a connection on which nothing moves for this long is closed, so a stalled upload does
   * not hold its socket and its staging until the request timeout.
   */
  apiConnectionTimeoutMs: 60_000,
  /** API: `/readyz` is 503 when Redis has not answered a PING within this. */
  apiReadyTimeoutMs: 1000,
  // Scheduler scripts: bounds on one call's loops (passed as ARGV, src/shared/scripts/includes/caps.lua),
  // so a call's work stays bounded however much is due; what is left waits for the next call.
  /** Scheduler: campaigns a freed slot looks at (in the key's waiting queue) for a group to wake. */
  wakeCampaignsPerSlot: 8,
  /** Scheduler: stale group entries skipped per campaign while looking for a waiting group to wake. */
  wakeGroupsPerCampaign: 8,
  /** Scheduler: expired leases reclaimed per dispatch step. */
  reclaimBatch: 200,
  /** Scheduler: due retries, and due delayed groups, woken per dispatch step (each). */
  wakeDueBatch: 500,
  /** Scheduler: ready groups a dispatch step may look at per target it may pick, plus `dispatchExtraLooks`. */
  dispatchLooksPerPick: 4,
  dispatchExtraLooks: 64,
  // Adaptive concurrency (a limit's `concurrency: {adaptive: ...}`; src/shared/scripts/includes/adaptive.lua).
  /** Adaptive: a round whose median call is within this ratio of the no-load latency (plus `adaptiveSlackMs`) was unqueued: it raises the figure. */
  adaptiveHoldRatio: 1.05,
  /** Adaptive: a round whose median call is above this ratio of the no-load latency (plus `adaptiveSlackMs`) was queued: two in a row cut the figure; in between it holds. */
  adaptiveRiseRatio: 1.2,
  /** Adaptive: a queued round whose fastest call is above this ratio of the no-load latency (plus `adaptiveSlackMs`) cuts at once, without waiting for a second one; a call counts in the mean that sizes a cut at most at this line. */
  adaptiveSureRiseRatio: 2,
  /**
   * Adaptive: latency added to every line, so the workers' own jitter (a few ms on a busy machine;
   * all of it on a 1 ms platform) is not read as a rise. 2, not the 4 it was: at 4 a 20 ms
   * platform's rise line sat at 1.45 x its capacity (the capacity model's latency grows with the
   * excess), so the figure climbed that far before a cut, and spent a third of its time under
   * the capacity climbing back (bench: adaptive 0.67-0.83 of ideal; with 2 and the cut factor
   * below, 0.86-0.87, fixed 40 0.88-0.89; BENCHMARKS.md).
   */
  adaptiveSlackMs: 2,
  /** Adaptive: a round (one vote on the figure) is the figure's number of calls, at least this many. */
  adaptiveRoundMinCalls: 4,
  /** Adaptive: a latency cut takes the figure to this share of what the platform answers unqueued (figure x no-load latency / the round's mean latency), under the capacity, so the queue drains. Under 1: the figure counts slots, and a slot also holds a call while its worker handles the answer and sends the next (the platform sees about 0.8-0.95 of the figure in flight on a busy 2-core machine), so that estimate is itself above the capacity. 0.85, not the 0.7 it was: 0.7 landed at about 0.7 of the capacity, and the climb back from there was time under it. */
  adaptiveRiseDecreaseFactor: 0.85,
  /** Adaptive: a latency cut multiplies the figure by at least this (on a fast platform the sure-rise line's clamp alone would allow deeper). */
  adaptiveRiseDecreaseMin: 0.3,
  /** Adaptive: the figure is multiplied by this on a 429, a 503 or a timeout (never below `min`). */
  adaptiveDecreaseFactor: 0.7,
  /**
   * Adaptive: after an overload answer with Retry-After (which pauses the whole connection) the cut
   * figure is multiplied by this too and the climb starts again in slow start. At the pause's end
   * the key would otherwise start its whole cut figure at once, with no latency to warn first: a
   * platform that shrank (or whose 429 came at well over its capacity) answers a second 429 and
   * a second pause. Slow start is back at the cut figure in a round or two when the platform
   * takes it, and a rise in latency cuts before anything is shed when it does not.
   */
  adaptiveRetryAfterRestartFactor: 0.5,
  /** Adaptive: in slow start (until the first round that was not unqueued) an unqueued round multiplies the figure by this; after it, one adds sqrt(figure). */
  adaptiveSlowStartFactor: 1.5,
  /** Adaptive: after an overload answer the figure climbs to at most this share of the figure that drew it. */
  adaptiveOverloadMargin: 0.9,
  /** Adaptive: that figure rises 1/this per unqueued round spent at the margin, so a platform that grew is found again (x2 in about 700 rounds: a 20 ms platform runs 25 rounds a second, and 100 would forget a 429 in seconds). */
  adaptiveOverloadDriftRounds: 1000,
  /** Adaptive: and is forgotten this long after the overload answer (the climb may then probe past it). */
  adaptiveOverloadMemoryMs: 15 * 60_000,
  /** Adaptive: a key's learned figure is forgotten after this long with no call ending on it. */
  adaptiveIdleMs: 24 * 3_600_000,
  /**
   * Maintenance windows: added to Redis's clock wherever a window is judged (dispatch, and the
   * intervals the producer and workers compute), so tests and drills can put a deployment in any
   * week without waiting for it. 0 in production. Every process of a deployment must have the
   * same (`UPSHIFT_WINDOW_CLOCK_OFFSET_MS`, read by `windowClockOffsetMs`).
   */
  windowClockOffsetMs: 0,
  /**
   * Maintenance windows: a group whose zone's interval has passed (or cannot be computed) waits
   * for the worker's refresh (`setWindows` wakes it); it is looked at again after this anyway,
   * so a worker lost mid-refresh strands nothing.
   */
  windowRecheckMs: 60_000,
  /** Maintenance windows: a failed refresh of a zone's interval is retried after this, doubling each time... */
  windowRefreshRetryMs: 1000,
  /** ...up to this. */
  windowRefreshRetryMaxMs: 300_000,
});

/** The window clock's offset (`DEFAULTS.windowClockOffsetMs`) from `UPSHIFT_WINDOW_CLOCK_OFFSET_MS`. */
export function windowClockOffsetMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.UPSHIFT_WINDOW_CLOCK_OFFSET_MS;
  if (raw === undefined || raw === '') return DEFAULTS.windowClockOffsetMs;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new InputError('environment', 'must be a whole number of ms', { field: 'UPSHIFT_WINDOW_CLOCK_OFFSET_MS' });
  return n;
}

const envSchema = z.object({
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').default(DEFAULTS.redisUrl),
  UPSHIFT_PREFIX: z
    .string()
    .regex(
      /^(?=.{1,64}$)[A-Za-z0-9_.-]*(\{[A-Za-z0-9_.-]+\})?[A-Za-z0-9_.-]*$/,
      'letters, digits, _ . - and at most one {hash tag}, at most 64 characters',
    )
    .default(DEFAULTS.prefix),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(DEFAULTS.logLevel),
  UPSHIFT_RETENTION_MS: z.coerce.number().int().min(1000, 'at least 1000 (ms)').default(DEFAULTS.retentionMs),
  UPSHIFT_API_TOKEN: z.string().optional(),
  UPSHIFT_API_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024, 'at least 1024 (bytes)').default(DEFAULTS.apiBodyLimitBytes),
  UPSHIFT_API_STREAM_LIMIT_BYTES: z.coerce.number().int().min(1024, 'at least 1024 (bytes)').default(DEFAULTS.apiStreamLimitBytes),
  UPSHIFT_API_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(0, '0 (none) or more (ms)').default(DEFAULTS.apiRequestTimeoutMs),
  UPSHIFT_API_CONNECTION_TIMEOUT_MS: z.coerce.number().int().min(0, '0 (none) or more (ms)').default(DEFAULTS.apiConnectionTimeoutMs),
  UPSHIFT_WINDOW_CLOCK_OFFSET_MS: z.coerce
    .number({ error: 'must be a whole number of ms' })
    .int('must be a whole number of ms')
    .refine(Number.isSafeInteger, 'must be a whole number of ms')
    .default(DEFAULTS.windowClockOffsetMs),
});

export interface UpshiftConfig {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly logLevel: string;
  /** How long an ended campaign's data is kept. */
  readonly retentionMs: number;
  /** Bearer token the HTTP API demands (`UPSHIFT_API_TOKEN`); undefined when not set. Never log it. */
  readonly apiToken: string | undefined;
  /** API (`upshift serve`): body limits and timeouts; the serve flags override these. */
  readonly apiBodyLimitBytes: number;
  readonly apiStreamLimitBytes: number;
  readonly apiRequestTimeoutMs: number;
  readonly apiConnectionTimeoutMs: number;
  /** Maintenance windows' clock offset (`UPSHIFT_WINDOW_CLOCK_OFFSET_MS`; tests and drills): parsed here so a bad value stops every command at start. */
  readonly windowClockOffsetMs: number;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): UpshiftConfig {
  const parsed = envSchema.safeParse({
    REDIS_URL: env.REDIS_URL || undefined,
    UPSHIFT_PREFIX: env.UPSHIFT_PREFIX || undefined,
    LOG_LEVEL: env.LOG_LEVEL || undefined,
    UPSHIFT_RETENTION_MS: env.UPSHIFT_RETENTION_MS || undefined,
    UPSHIFT_API_TOKEN: env.UPSHIFT_API_TOKEN || undefined,
    UPSHIFT_API_BODY_LIMIT_BYTES: env.UPSHIFT_API_BODY_LIMIT_BYTES || undefined,
    UPSHIFT_API_STREAM_LIMIT_BYTES: env.UPSHIFT_API_STREAM_LIMIT_BYTES || undefined,
    UPSHIFT_API_REQUEST_TIMEOUT_MS: env.UPSHIFT_API_REQUEST_TIMEOUT_MS || undefined,
    UPSHIFT_API_CONNECTION_TIMEOUT_MS: env.UPSHIFT_API_CONNECTION_TIMEOUT_MS || undefined,
    UPSHIFT_WINDOW_CLOCK_OFFSET_MS: env.UPSHIFT_WINDOW_CLOCK_OFFSET_MS || undefined,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputError('environment', issue.message, { field: issue.path.join('.') });
  }
  if (isClusterUrl(parsed.data.REDIS_URL) && !/\{.+\}/.test(parsed.data.UPSHIFT_PREFIX)) {
    // Every script touches keys of many campaigns at once (shared limits, the round robin), so
    // in a Redis Cluster the deployment's keys must share one slot: the prefix's hash tag.
    throw new InputError('environment', "on a Redis Cluster the prefix needs a hash tag so the scheduler's keys share a slot", {
      fix: `set UPSHIFT_PREFIX={${parsed.data.UPSHIFT_PREFIX}}`,
      field: 'UPSHIFT_PREFIX',
    });
  }
  return Object.freeze({
    redisUrl: parsed.data.REDIS_URL,
    prefix: parsed.data.UPSHIFT_PREFIX,
    logLevel: parsed.data.LOG_LEVEL,
    retentionMs: parsed.data.UPSHIFT_RETENTION_MS,
    apiToken: parsed.data.UPSHIFT_API_TOKEN,
    apiBodyLimitBytes: parsed.data.UPSHIFT_API_BODY_LIMIT_BYTES,
    apiStreamLimitBytes: parsed.data.UPSHIFT_API_STREAM_LIMIT_BYTES,
    apiRequestTimeoutMs: parsed.data.UPSHIFT_API_REQUEST_TIMEOUT_MS,
    apiConnectionTimeoutMs: parsed.data.UPSHIFT_API_CONNECTION_TIMEOUT_MS,
    windowClockOffsetMs: parsed.data.UPSHIFT_WINDOW_CLOCK_OFFSET_MS,
  });
}

/** A Redis URL fit for logs: the password replaced. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid redis url>';
  }
}

/**
 * `REDIS_URL=redis://host:port?cluster=true`: the URL names one seed node of a Redis Cluster
 * (the others are discovered). Any other URL is a single Redis.
 */
export function isClusterUrl(url: string): boolean {
  try {
    const v = new URL(url).searchParams.get('cluster');
    return v === 'true' || v === '1';
  } catch {
    return false;
  }
}

/** A shifted window clock left set moves every window: a long-running process says so at start. */
export function warnWindowClockOffset(config: UpshiftConfig, log: { warn(obj: object, msg: string): void }): void {
  if (config.windowClockOffsetMs !== 0) {
    log.warn({ windowClockOffsetMs: config.windowClockOffsetMs }, 'UPSHIFT_WINDOW_CLOCK_OFFSET_MS is set: every maintenance window is judged on a shifted clock (tests and drills only)');
  }
}
