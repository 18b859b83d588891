import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { eventsChannel, readStatus } from '../../src/shared/index.js';
import { startPrivateRedis } from '../../scripts/lib/private-redis.js';
import { testPrefix } from '../support/harness.js';
import { connectionsFile, testConnectionsWith } from '../support/connections.js';
import { setupDeployment } from '../support/deployment.js';
import { recordFigures } from './figures.js';

const SECRETS = {
  alloy: 'sk_live_ALLOY_0a1b2c3d4e5f60718293',
  conductor: 'orkes_key_CONDUCTOR_9f8e7d6c5b4a',
  tallyfy: 'tallyfy_token_TALLY_44556677889900',
  nected: 'nected_api_NECTED_aa11bb22cc33dd44',
};
const REDIS_PASSWORD = 'redis-pw-Zq81vX0pL2';

/** Every value in the database, as text, type by type. */
async function dumpAll(redis: Redis): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      out.push(key);
      const type = await redis.type(key);
      if (type === 'string') out.push((await redis.get(key)) ?? '');
      else if (type === 'hash') out.push(...Object.entries(await redis.hgetall(key)).flat());
      else if (type === 'list') out.push(...(await redis.lrange(key, 0, -1)));
      else if (type === 'set') out.push(...(await redis.smembers(key)));
      else if (type === 'zset') out.push(...(await redis.zrange(key, 0, -1)));
      else if (type === 'stream') out.push(JSON.stringify(await redis.xrange(key, '-', '+')));
    }
  } while (cursor !== '0');
  return out;
}

describe('secrets', () => {
  // Faults make error records, whose stored text must not carry a credential either.
  const t = setupDeployment({ sandbox: { keys: SECRETS, failRate: 0.2, throttleRate: 0.05, retryAfterS: 0, latencyMs: 2 } });

  it('no credential and no Redis password in any Redis value or any log line of a full run', async () => {
    const server = await startPrivateRedis([], { password: REDIS_PASSWORD });
    const url = server.url;
    const redis = new Redis(url);
    const prefix = testPrefix();
    try {
      t.sandbox.load({
        alloy: { workflows: { w: { latestVersion: 2 } }, installs: Array.from({ length: 200 }, (_, i) => ({ workflowId: 'w', userId: `u${i}`, version: 1, forbidden: i % 10 === 0 })) },
        tallyfy: { runs: Array.from({ length: 100 }, (_, i) => ({ orgId: 'o', id: `r${i}`, name: 'old' })) },
      });
      // The sandbox registered for this test's own variables, as the worker and producer see it.
      const connections = testConnectionsWith([t.sandbox.url], ['SECRET_ALLOY', 'SECRET_TALLYFY', 'SECRET_WRONG']);
      const env = {
        REDIS_URL: url,
        UPSHIFT_PREFIX: prefix,
        UPSHIFT_CONNECTIONS: connectionsFile(connections),
        LOG_LEVEL: 'debug',
        SECRET_ALLOY: SECRETS.alloy,
        SECRET_TALLYFY: SECRETS.tallyfy,
        // A wrong key: every call answers 401, and the error text is stored.
        SECRET_WRONG: `${SECRETS.nected}-revoked`,
      };
      const w = await t.spawnWorker(['--concurrency', '8'], env);
      const conn = (ref: string) => ({ baseUrl: t.sandbox.url, credentialRef: ref, timeoutMs: 2000 });
      const ids = ['s-alloy', 's-tallyfy', 's-denied'];
      await enqueueCampaign({ id: ids[0], connection: conn('SECRET_ALLOY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'w' }, retry: { attempts: 3, backoffMs: 1 } }, Array.from({ length: 200 }, (_, i) => ({ userId: `u${i}` })), { redis, prefix, connections });
      await enqueueCampaign({ id: ids[1], connection: conn('SECRET_TALLYFY'), operation: { type: 'tallyfy.updateRun', orgId: 'o', changes: { name: 'new' } }, retry: { attempts: 3, backoffMs: 1 } }, Array.from({ length: 100 }, (_, i) => ({ runId: `r${i}` })), { redis, prefix, connections });
      await enqueueCampaign({ id: ids[2], connection: conn('SECRET_WRONG'), operation: { type: 'tallyfy.updateRun', orgId: 'o', changes: { name: 'new' } } }, [{ runId: 'r1' }], { redis, prefix, connections });

      const sub = new Redis(url);
      const pending = new Set(ids);
      const allEnded = new Promise<void>((resolve) =>
        sub.on('message', (_c, m: string) => {
          const e = JSON.parse(m) as { id: string; ended?: boolean };
          if (e.ended) pending.delete(e.id);
          if (pending.size === 0) resolve();
        }),
      );
      await sub.subscribe(eventsChannel(prefix));
      for (const id of ids) if ((await readStatus(redis, prefix, id))?.finishedAt !== undefined) pending.delete(id);
      if (pending.size > 0) await allEnded;
      sub.disconnect();

      const failedDenied = await readStatus(redis, prefix, 's-denied');
      expect(failedDenied).toMatchObject({ failed: 1 });
      w.proc.kill('SIGTERM');
      await w.exited;

      const values = await dumpAll(redis);
      const logs = w.stderr();
      const needles = [...Object.values(SECRETS), REDIS_PASSWORD];
      for (const needle of needles) {
        expect(values.filter((v) => v.includes(needle)), needle).toEqual([]);
        expect(logs.includes(needle), needle).toBe(false);
      }
      // Debug logging did run, so the scan covered real log output.
      expect(logs.length).toBeGreaterThan(0);
      recordFigures('secrets', {
        redisValuesScanned: values.length,
        logBytesScanned: logs.length,
        secretsLooked: needles.length,
        found: 0,
        redisUrlWithPassword: 'yes',
      });
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});
