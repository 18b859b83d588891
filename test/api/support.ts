import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApi, type ApiOptions } from '../../src/producer/api/index.js';
import type { Redis } from 'ioredis';
import { noConnections } from '../support/connections.js';
import { openDeployment } from '../support/deployment.js';
import { keysUnder } from '../support/harness.js';

/** A token as an operator would set it (never logged: see the log capture). */
export const TOKEN = 'test-token-0123456789abcdef';
export const AUTH = { authorization: `Bearer ${TOKEN}` } as const;

/** `POST /campaigns` with a JSON body, authorised, as a caller of the API sends it. */
export function postCampaign(app: FastifyInstance, body: unknown) {
  return app.inject({ method: 'POST', url: '/campaigns', headers: { ...AUTH, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
}

export interface TestApi {
  readonly app: FastifyInstance;
  readonly redis: Redis;
  readonly prefix: string;
  /** Every log line the API wrote, as text. */
  logs(): string;
  /** Resolves when the API next writes a log line. */
  logged(): Promise<void>;
  close(): Promise<void>;
}

/**
 * An API over real Redis under a fresh prefix (or the test's, given `redis` and `prefix`), logging
 * at trace level into memory. Its connections registry is empty unless the test gives one
 * (`testConnections` of the URLs its specs use): a test that enqueues nothing registers nothing.
 */
export async function startTestApi(
  // A plain client: the tests read keys back with SCAN, which a Cluster runs per node.
  overrides: Partial<Omit<ApiOptions, 'redis'>> & { readonly redis?: Redis } = {},
): Promise<TestApi> {
  // A test that gives the Redis connection and prefix (a deployment's) owns them; else the API does.
  const own = overrides.redis === undefined ? await openDeployment() : undefined;
  const redis = overrides.redis ?? own!.redis;
  const prefix = overrides.prefix ?? own!.prefix;
  let text = '';
  let waiters: (() => void)[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      const woken = waiters;
      waiters = [];
      for (const w of woken) w();
      done();
    },
  });
  const log = pino({ level: 'trace' }, sink);
  try {
    const app = await buildApi({ redis, prefix, log, apiToken: TOKEN, connections: noConnections(), ...overrides });
    return {
      app,
      redis,
      prefix,
      logs: () => text,
      logged: () => new Promise<void>((resolve) => waiters.push(resolve)),
      async close() {
        await app.close();
        await own?.close();
      },
    };
  } catch (err) {
    await own?.close();
    throw err;
  }
}

export { until } from '../support/harness.js';

/** NDJSON text: one JSON value a line. */
export function ndjson(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join('\n') + '\n';
}

/** Every key under the prefix but BullMQ's own queue keys (Bull Board's queue writes its meta at start). */
export async function campaignData(redis: Redis, prefix: string): Promise<string[]> {
  return (await keysUnder(redis, prefix)).filter((k) => !k.startsWith(`${prefix}:targets:`));
}
