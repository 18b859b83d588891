import { connectRedis, createRedis, InputError, type RedisClient, type UpshiftConfig } from '../shared/index.js';

/** The CLI's answer to an id with no campaign under the deployment's prefix. */
export function noCampaign(id: string, prefix: string): InputError {
  return new InputError('arguments', `no campaign "${id}" under prefix "${prefix}"`, {
    code: 'CAMPAIGN_NOT_FOUND',
    fix: 'list campaigns with "upshift list" or set UPSHIFT_PREFIX',
  });
}

/** Runs `fn` with a connected Redis of the deployment, disconnected after (a command is one short session). */
export async function withRedis<T>(config: UpshiftConfig, fn: (redis: RedisClient) => Promise<T>): Promise<T> {
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
