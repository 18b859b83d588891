import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { campaignKeys, schedulerKeys } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

/** Upgrading workers in place strands nothing that an earlier version left in Redis. */
describe('upgrade in place', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 1 }, credentials: true });

  it('a group an earlier version left in a blocked:<key> set (no longer read) is woken at worker start and runs', async () => {
    const fleet = alloyFleet(4);
    t.sandbox.load(fleet.fixtures);
    await enqueueCampaign(
      { id: 'old', connection: 'UPSHIFT_TEST_ALLOY_KEY', operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' }, limits: [{ key: 'k', concurrency: 1 }] },
      fleet.targets,
      t.producer,
    );
    // The layout of the version before round-robin turns: the group is marked blocked and sits
    // in the key's set, in no ready list and no waiting queue.
    const keys = campaignKeys(t.prefix, 'old');
    const gid = (await t.redis.lrange(keys.ready, 0, -1))[0]!;
    await t.redis.lrem(keys.ready, 0, gid);
    await t.redis.hset(keys.gstate, gid, 'b');
    await t.redis.sadd(`${schedulerKeys(t.prefix).ring.replace(/ring$/, '')}blocked:UPSHIFT_TEST_ALLOY_KEY/k`, `old|${gid}`);
    await t.startWorker({ concurrency: 2 });
    const s = await waitForCompletion(t.prefix, 'old', 30_000);
    expect(s).toMatchObject({ total: 4, upgraded: 4 });
    expect(await t.redis.exists(`${t.prefix}:sched:blocked:UPSHIFT_TEST_ALLOY_KEY/k`)).toBe(0);
  });
});
