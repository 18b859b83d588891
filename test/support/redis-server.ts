import { startPrivateRedis, type TestRedis } from '../../scripts/lib/private-redis.js';

export type { TestRedis };

/**
 * Where tests get Redis: REDIS_URL when set; else testcontainers when a Docker engine answers;
 * else a private `redis-server` on a free port; else an error that says how to get one.
 */
async function dockerAnswers(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export async function provideRedis(): Promise<TestRedis> {
  if (process.env.REDIS_URL) {
    return { url: process.env.REDIS_URL, how: 'REDIS_URL', stop: async () => undefined };
  }
  if (await dockerAnswers()) {
    const { GenericContainer } = await import('testcontainers');
    const container = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start();
    return {
      url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`,
      how: 'testcontainers redis:7-alpine',
      stop: async () => {
        await container.stop();
      },
    };
  }
  try {
    return await startPrivateRedis();
  } catch (err) {
    throw new Error(
      `no Redis for the tests: REDIS_URL is unset, no Docker engine answers, and redis-server could not start ` +
        `(${(err as Error).message}). Install it (Debian: apt-get install redis-server) or set REDIS_URL.`,
    );
  }
}
