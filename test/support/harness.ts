import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { eventsChannel, readStatus, type CampaignStatus } from '../../src/shared/index.js';

export function redisUrl(): string {
  return inject('redisUrl');
}

/** Each test owns a random prefix, so tests never see each other's keys. */
export function testPrefix(): string {
  return `t${randomBytes(5).toString('hex')}`;
}

export function newRedis(): Redis {
  const r = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  r.on('error', () => undefined);
  return r;
}

export async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out.sort();
}

export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  const keys = await keysUnder(redis, prefix);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
}

/**
 * Resolves with the campaign's status once it has ended (`completed`, or `cancelled` and
 * drained), waiting on the event the worker publishes (subscribe first, then read, so the event
 * cannot slip between).
 */
export async function waitForCompletion(prefix: string, id: string, timeoutMs = 60_000): Promise<CampaignStatus> {
  return waitFor(prefix, id, (e) => e.ended === true, (s) => s.finishedAt !== undefined, 'ended', timeoutMs);
}

/** Resolves with the status once the campaign's `state` is one of `states` (announced on the events channel). */
export function waitForState(prefix: string, id: string, states: readonly string[], timeoutMs = 60_000): Promise<CampaignStatus> {
  return waitFor(prefix, id, (e) => states.includes(e.state), (s) => states.includes(s.state), states.join('/'), timeoutMs);
}

interface CampaignEvent {
  id: string;
  state: string;
  ended?: boolean;
}

async function waitFor(
  prefix: string,
  id: string,
  match: (e: CampaignEvent) => boolean,
  already: (s: CampaignStatus) => boolean,
  what: string,
  timeoutMs: number,
): Promise<CampaignStatus> {
  const sub = newRedis();
  const reader = newRedis();
  try {
    const done = new Promise<void>((resolve) => {
      sub.on('message', (_channel, message: string) => {
        const event = JSON.parse(message) as CampaignEvent;
        if (event.id === id && match(event)) resolve();
      });
    });
    await sub.subscribe(eventsChannel(prefix));
    const now = await readStatus(reader, prefix, id);
    if (now === null || !already(now)) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(async () => {
          const s = await readStatus(reader, prefix, id).catch(() => null);
          reject(new Error(`campaign ${id} not ${what} within ${timeoutMs} ms: ${JSON.stringify(s)}`));
        }, timeoutMs);
      });
      await Promise.race([done, timeout]).finally(() => clearTimeout(timer));
    }
    return (await readStatus(reader, prefix, id))!;
  } finally {
    sub.disconnect();
    reader.disconnect();
  }
}

/**
 * Reads until `ok` holds, for state that announces nothing (staged list lengths, webhook
 * delivery records); anything with an event is waited for on the event instead.
 */
export async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${JSON.stringify(v)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
