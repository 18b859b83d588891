import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Queue, Worker } from 'bullmq';
import {
  connectRedis,
  createRedis,
  DEFAULTS,
  eventsChannel,
  flushTracing,
  HttpClient,
  loadScripts,
  TARGET_QUEUE,
  upshiftTracer,
  type Logger,
  type RedisClient,
  type Scripts,
  type TargetJobData,
  type UpshiftConfig,
  type ConnectionRegistry,
} from '../shared/index.js';
import { masterNodes } from '../shared/redis.js';
import { Archiver } from './archiver.js';
import { BreachUndo } from './breach-undo.js';
import { CampaignCache } from './campaigns.js';
import { Dispatcher } from './dispatcher.js';
import { refreshWindows } from '../shared/window-store.js';
import { Finisher } from './finisher.js';
import { LeaseKeeper } from './leases.js';
import { Notifier } from './notifier.js';
import { serveMetrics, WorkerMetrics } from './metrics/index.js';
import { PauseBoard } from './pauses.js';
import { createProcessor } from './processor.js';

export interface WorkerOptions {
  readonly concurrency: number;
  readonly lockDurationMs: number;
  readonly stalledIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  readonly maxRetryAfterMs: number;
  /** How old Redis's word that a connection is not paused may be when a call is written (pauses.ts). */
  readonly pauseGateMs: number;
  readonly maxRetryAfterWaits: number;
  readonly maxBackoffMs: number;
  readonly maxErrorChars: number;
  readonly maxStalledCount: number;
  readonly leaseMs: number;
  readonly dispatchBatch: number;
  readonly finishGroupMax: number;
  readonly finishCallsInFlight: number;
  readonly outboxSweepMs: number;
  readonly archiveBatchMs: number;
  /** Serve GET /metrics and /healthz on this port (0: any free one); none when undefined. */
  readonly metricsPort?: number;
  /** The address /metrics and /healthz listen on (default 127.0.0.1, loopback only). */
  readonly metricsHost?: string;
  /** Webhook deliveries (notifier.ts): how many at once, each one's timeout, and the retry backoff. */
  readonly notifyConcurrency: number;
  readonly notifyTimeoutMs: number;
  readonly notifyBackoffMs: number;
  readonly notifyMaxBackoffMs: number;
  readonly notifyMaxAgeMs: number;
  readonly notifyLeaseMarginMs: number;
}

export interface RunningWorker {
  readonly worker: Worker<TargetJobData>;
  /** Registration id in the scheduler (`<host>:<pid>:<random>`). */
  readonly id: string;
  /** This worker's counters and the fleet gauges (`render()` gives what /metrics serves). */
  readonly metrics: WorkerMetrics;
  /** The port /metrics and /healthz are served on, when `metricsPort` was given. */
  readonly metricsPort: number | undefined;
  /** Takes no new job, waits up to `shutdownTimeoutMs` for in-flight ones, then disconnects. */
  close(): Promise<void>;
}

export async function startWorker(
  config: Pick<UpshiftConfig, 'redisUrl' | 'prefix'> & Partial<UpshiftConfig>,
  log: Logger,
  options: Partial<WorkerOptions> & { readonly connections: ConnectionRegistry },
): Promise<RunningWorker> {
  const opts: WorkerOptions = { ...DEFAULTS, ...stripUndefined(options) };
  const { connections } = options;
  const redis = createRedis(config.redisUrl);
  redis.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  await connectRedis(redis, config.redisUrl, {
    retries: 10,
    onRetry: (n, err) => log.warn({ attempt: n, err: (err as Error).message }, 'waiting for Redis'),
  });
  const metrics = new WorkerMetrics({ redis, prefix: config.prefix, tracer: upshiftTracer(), processMetrics: opts.metricsPort !== undefined });
  // /healthz is 200 only between "ready" and the start of close().
  let serving: 'starting' | 'running' | 'closing' = 'starting';
  const metricsServer =
    opts.metricsPort === undefined
      ? undefined
      : await serveMetrics(metrics, opts.metricsPort, () => serving === 'running', opts.metricsHost).catch((err: Error) => {
          redis.disconnect();
          throw err;
        });
  const sub = redis.duplicate();
  sub.on('error', (err) => log.debug({ err: err.message }, 'redis subscriber error'));

  const id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  const scripts = loadScripts(redis, config.prefix);
  await wakeLegacyBlocked(redis, config.prefix, scripts, log);
  const queue = new Queue<TargetJobData>(TARGET_QUEUE, { connection: redis, prefix: config.prefix });
  const leases = new LeaseKeeper(scripts, log, id, opts.concurrency, opts.leaseMs);
  const dispatcher = new Dispatcher(scripts, queue, log, opts.dispatchBatch, opts.leaseMs, (stale, nowMs) =>
    refreshWindows(redis, config.prefix, scripts, stale, nowMs),
  );
  const http = new HttpClient();
  const channel = eventsChannel(config.prefix);
  const pauses = new PauseBoard((connection) => scripts.pauseOf(connection), opts.pauseGateMs);
  const archiver = new Archiver(redis, scripts, config.prefix, log, opts.archiveBatchMs, opts.outboxSweepMs);
  const breachUndo = new BreachUndo(redis, config.prefix, connections, log, opts.outboxSweepMs);
  // Its own HTTP client: a slow receiver's sockets never queue behind, or ahead of, platform calls.
  const notifyHttp = new HttpClient({ connections: opts.notifyConcurrency });
  const notifier = new Notifier(scripts, connections, notifyHttp, log, (outcome) => metrics.notified(outcome), {
    concurrency: opts.notifyConcurrency,
    timeoutMs: opts.notifyTimeoutMs,
    backoffMs: opts.notifyBackoffMs,
    maxBackoffMs: opts.notifyMaxBackoffMs,
    maxAgeMs: opts.notifyMaxAgeMs,
    leaseMarginMs: opts.notifyLeaseMarginMs,
    sweepMs: opts.outboxSweepMs,
    maxErrorChars: opts.maxErrorChars,
  });
  let closing: Promise<void> | undefined;
  const processor = createProcessor({
    scripts,
    campaigns: new CampaignCache(redis, config.prefix, connections),
    leases,
    http,
    log,
    limits: opts,
    channel,
    pauses,
    dispatcher,
    archiver,
    finisher: new Finisher(scripts, dispatcher, channel, opts.dispatchBatch, opts.leaseMs, opts.finishGroupMax, log, opts.finishCallsInFlight),
    continuing: () => closing === undefined,
    metrics,
  });

  const worker = new Worker<TargetJobData>(TARGET_QUEUE, processor, {
    connection: redis,
    prefix: config.prefix,
    concurrency: opts.concurrency,
    lockDuration: opts.lockDurationMs,
    stalledInterval: opts.stalledIntervalMs,
    maxStalledCount: opts.maxStalledCount,
  });
  worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));
  await worker.waitUntilReady();

  // A new or resumed campaign announces itself; this worker then looks for work at once. A
  // Retry-After pause is announced too: running targets hold their next call on that connection.
  // A campaign's state change may have recorded a webhook event: the notifier looks then too.
  sub.on('message', (_channel, message: string) => {
    const event = JSON.parse(message) as { id?: string; pause?: string; until?: number; now?: number; undo?: boolean; notify?: string };
    if (event.pause !== undefined) return pauses.note(event.pause, event.until!, event.now!);
    notifier.trigger();
    if (event.notify !== undefined) return;
    if (event.undo === true && event.id !== undefined) breachUndo.note(event.id);
    else dispatcher.trigger();
  });
  await sub.subscribe(channel);
  void breachUndo.sweep();
  notifier.trigger();
  await leases.register();
  dispatcher.trigger();
  serving = 'running';

  return {
    worker,
    id,
    metrics,
    metricsPort: metricsServer?.port,
    close() {
      closing ??= (async () => {
        serving = 'closing';
        dispatcher.stop();
        breachUndo.close();
        await sub.quit().catch(() => sub.disconnect());
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), opts.shutdownTimeoutMs);
        });
        const result = await Promise.race([worker.close().then(() => 'closed' as const), timedOut]);
        clearTimeout(timer);
        if (result === 'timeout') {
          log.warn({ shutdownTimeoutMs: opts.shutdownTimeoutMs }, 'in-flight jobs did not finish in time; closing anyway');
          await worker.close(true);
        }
        await notifier.close();
        await notifyHttp.close();
        await archiver.close();
        await leases.leave().catch((err: Error) => log.warn({ err: err.message }, 'could not deregister'));
        await queue.close();
        await http.close();
        await metricsServer?.close();
        await metrics.close();
        await flushTracing();
        await redis.quit().catch(() => redis.disconnect());
      })();
      return closing;
    },
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Groups a worker of an earlier version left waiting in `<p>:sched:blocked:<key>` sets (read by
 * nothing now) are made ready again, so an upgrade in place strands no target. One SCAN at
 * start; on a Redis Cluster every key of the deployment is on the prefix's slot, so each master
 * is scanned and only the one holding them finds any.
 */
async function wakeLegacyBlocked(redis: RedisClient, prefix: string, scripts: Scripts, log: Logger): Promise<void> {
  const head = `${prefix}:sched:blocked:`;
  const nodes = masterNodes(redis);
  let woke = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${head.replace(/[*?[\]]/g, (ch) => `\\${ch}`)}*`, 'COUNT', DEFAULTS.scanCount);
      cursor = next;
      for (const key of keys) woke += await scripts.wakeLegacyBlocked(key.slice(head.length));
    } while (cursor !== '0');
  }
  if (woke > 0) log.info({ groups: woke }, 'woke groups an earlier version left waiting for a slot');
}
