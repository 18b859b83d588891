import { Cluster, Redis, type RedisOptions } from 'ioredis';
import pRetry from 'p-retry';
import { isClusterUrl, redactRedisUrl } from './config.js';

/**
 * What createRedis makes: a plain client, or a Cluster client for a cluster URL. Everything
 * that takes a connection takes this; only a caller that must address one node (a keyspace
 * SCAN, see masterNodes) asks for a plain `Redis`.
 */
export type RedisClient = Redis | Cluster;

/**
 * A connection for BullMQ and our scripts. `maxRetriesPerRequest: null` is what BullMQ needs
 * for blocking commands; reconnects back off up to 2 s, forever, so a Redis restart is ridden
 * out instead of crashing the process.
 */
export function createRedis(url: string, extra: RedisOptions = {}): RedisClient {
  const backoff = (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000);
  if (!isClusterUrl(url)) {
    return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true, retryStrategy: backoff, ...extra });
  }
  const u = new URL(url);
  const cluster = new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    lazyConnect: true,
    clusterRetryStrategy: backoff,
    redisOptions: {
      maxRetriesPerRequest: null,
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
      ...extra,
    },
  });
  // The commands Upshift uses (scripts, hashes, lists, pub/sub, BullMQ's) behave alike on both;
  // every key of a deployment shares the prefix's hash tag, so no call spans two slots.
  return cluster;
}

/**
 * The nodes a keyspace SCAN must visit: every master of a Cluster (SCAN runs on one node), or
 * the one Redis. Takes either, since createRedis may have made either.
 */
export function masterNodes(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

export class RedisUnavailableError extends Error {
  readonly errorCode = 'REDIS_UNAVAILABLE';

  constructor(url: string, cause: unknown) {
    super(
      `cannot reach Redis at ${redactRedisUrl(url)}: ${(cause as Error)?.message ?? String(cause)}. ` +
        'Start one (e.g. `redis-server --port 6379`) or set REDIS_URL.',
    );
    this.name = 'RedisUnavailableError';
  }
}

/**
 * Connects with bounded, backed-off tries (p-retry) and then PINGs; throws a
 * `RedisUnavailableError` naming the (password-free) URL when every try failed.
 */
export async function connectRedis(
  redis: RedisClient,
  url: string,
  opts: { retries?: number; tryTimeoutMs?: number; onRetry?: (attempt: number, err: unknown) => void } = {},
): Promise<void> {
  try {
    await pRetry(
      async () => {
        // ioredis keeps reconnecting by itself once started; each try waits for the next
        // 'ready' or 'error', so a refused connection fails the try at once.
        if (redis.status !== 'ready') {
          const settled = nextReadyOrError(redis);
          if (redis.status === 'wait') redis.connect().catch(() => undefined);
          await withTimeout(settled, opts.tryTimeoutMs ?? 2000);
        }
        await withTimeout(redis.ping(), opts.tryTimeoutMs ?? 2000);
      },
      {
        retries: opts.retries ?? 4,
        minTimeout: 200,
        maxTimeout: 2000,
        onFailedAttempt: ({ attemptNumber, error }) => opts.onRetry?.(attemptNumber, error),
      },
    );
  } catch (err) {
    throw new RedisUnavailableError(url, err);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function nextReadyOrError(redis: RedisClient): Promise<void> {
  return new Promise((resolve, reject) => {
    const onReady = () => {
      redis.off('error', onError);
      resolve();
    };
    const onError = (err: Error) => {
      redis.off('ready', onReady);
      reject(err);
    };
    redis.once('ready', onReady);
    redis.once('error', onError);
  });
}

/** Redis's `TIME` answer in ms: the clock the scripts use (leases, pauses), for reads that compare with them. */
export function redisTimeMs([seconds, micros]: readonly (string | number)[]): number {
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
