import type { Redis } from 'ioredis';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { campaignKeys, createLogger, schedulerKeys } from '../../src/shared/index.js';
import { startWorker, type RunningWorker } from '../../src/worker/index.js';
import { testConnections } from '../support/connections.js';
import { alloyFleet, setCredentialEnv } from '../support/fleet.js';
import { deletePrefix, newRedis, redisUrl, testPrefix, waitForCompletion } from '../support/harness.js';

/** Upgrading workers in place strands nothing that an earlier version left in Redis. */
describe('upgrade in place', () => {
  let redis: Redis;
  let prefix: string;
  let sandbox: Sandbox;
  let worker: RunningWorker | undefined;

  beforeAll(() => setCredentialEnv());
  beforeEach(async () => {
    redis = newRedis();
    prefix = testPrefix();
    sandbox = await startSandbox({ latencyMs: 1 });
  });
  afterEach(async () => {
    await worker?.close();
    worker = undefined;
    await sandbox.close();
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  it('a group an earlier version left in a blocked:<key> set (no longer read) is woken at worker start and runs', async () => {
    const fleet = alloyFleet(4);
    sandbox.load(fleet.fixtures);
    const connections = testConnections(sandbox.url);
    await enqueueCampaign(
      { id: 'old', connection: 'UPSHIFT_TEST_ALLOY_KEY', operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' }, limits: [{ key: 'k', concurrency: 1 }] },
      fleet.targets,
      { redis, prefix, connections },
    );
    // The layout of the version before round-robin turns: the group is marked blocked and sits
    // in the key's set, in no ready list and no waiting queue.
    const keys = campaignKeys(prefix, 'old');
    const gid = (await redis.lrange(keys.ready, 0, -1))[0]!;
    await redis.lrem(keys.ready, 0, gid);
    await redis.hset(keys.gstate, gid, 'b');
    await redis.sadd(`${schedulerKeys(prefix).ring.replace(/ring$/, '')}blocked:UPSHIFT_TEST_ALLOY_KEY/k`, `old|${gid}`);
    worker = await startWorker({ redisUrl: redisUrl(), prefix, logLevel: 'silent' }, createLogger('silent'), { concurrency: 2, connections });
    const s = await waitForCompletion(prefix, 'old', 30_000);
    expect(s).toMatchObject({ total: 4, upgraded: 4 });
    expect(await redis.exists(`${prefix}:sched:blocked:UPSHIFT_TEST_ALLOY_KEY/k`)).toBe(0);
  });
});
