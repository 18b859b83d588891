import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { provideRedis } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await provideRedis();
  console.log(`tests use Redis from ${redis.how}`);
  project.provide('redisUrl', redis.url);
  return () => redis.stop();
}
