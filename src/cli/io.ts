import { connectRedis, createRedis, type Redis, type UpshiftConfig } from '../shared/index.js';

/** Runs `fn` with a connected Redis of the deployment, disconnected after (a command is one short session). */
export async function withRedis<T>(config: UpshiftConfig, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = createRedis(config.redisUrl);
  redis.on('error', () => undefined);
  try {
    await connectRedis(redis, config.redisUrl);
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

export function write(out: NodeJS.WritableStream, s: string): Promise<void> {
  return new Promise((resolve) => (out.write(s) ? resolve() : out.once('drain', resolve)));
}
