import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { campaignKeys, streamReport } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

describe('worker processes', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 20 } });
  // Short leases and locks so a killed worker's targets come back within the test's time.
  const fastStall = ['--lease-ms', '1500', '--lock-duration-ms', '1000', '--stalled-interval-ms', '500'];

  it('a SIGKILLed worker mid-campaign: another finishes it with exact counters', async () => {
    const fleet = alloyFleet(400);
    t.sandbox.load(fleet.fixtures);

    const { campaignId } = await enqueueCampaign(
      { id: 'crash', connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } },
      fleet.targets,
      t.producer,
    );
    const doomed = await t.spawnWorker(['--concurrency', '10', ...fastStall]);
    await t.sandbox.requestsReached(60);
    doomed.proc.kill('SIGKILL');
    expect((await doomed.exited).signal).toBe('SIGKILL');

    const survivor = await t.spawnWorker(['--concurrency', '10', ...fastStall]);
    const status = await waitForCompletion(t.prefix, campaignId);

    expect(status).toMatchObject({ state: 'completed', total: 400, upgraded: 400, skipped: 0, failed: 0, pending: 0, active: 0 });
    // The killed worker's leases expired and their targets were requeued by the scheduler.
    expect(status.reclaimed).toBeGreaterThan(0);
    expect(await t.redis.hlen(campaignKeys(t.prefix, campaignId).outcomes)).toBe(400);
    let lines = 0;
    for await (const line of streamReport(t.redis, t.prefix, campaignId)) {
      expect(line.outcome).toBe('upgraded');
      lines++;
    }
    expect(lines).toBe(400);
    // Every install moved; a target in flight at the kill may have been called twice, never more
    // than the killed worker's concurrency in all.
    const applied = t.sandbox.stats().appliedByTarget;
    expect(Object.keys(applied)).toHaveLength(400);
    const extra = Object.values(applied).reduce((a, b) => a + b, 0) - 400;
    expect(extra).toBeLessThanOrEqual(10);
    console.log(`SIGKILL test: ${extra} target(s) applied twice (bound: 10, the killed worker's concurrency)`);

    survivor.proc.kill('SIGTERM');
    expect((await survivor.exited).code).toBe(0);
  });

  it('SIGTERM: the worker finishes in-flight targets and exits 0', async () => {
    t.sandbox.configure({ latencyMs: 400 });
    const fleet = alloyFleet(30);
    t.sandbox.load(fleet.fixtures);
    const busy = await t.jobsActive(5);
    const { campaignId } = await enqueueCampaign(
      { id: 'term', connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } },
      fleet.targets,
      t.producer,
    );
    const w = await t.spawnWorker(['--concurrency', '5']);
    await busy.reached;
    w.proc.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);

    const keys = campaignKeys(t.prefix, campaignId);
    const done = await t.redis.hlen(keys.outcomes);
    expect(done).toBeGreaterThanOrEqual(5);
    expect(done).toBeLessThan(30);
    expect(await t.redis.llen(`${t.prefix}:targets:active`)).toBe(0);
    // Every slot a run of the stopped worker held is released; what is still held belongs to
    // targets dispatched but not started (no run token), which any other worker picks up.
    const inflight = Object.values(await t.redis.hgetall(`${t.prefix}:sched:inflight`));
    expect(inflight.filter((v) => !/^\d+\|\|/.test(v))).toEqual([]);
    expect(await t.redis.zcard(`${t.prefix}:sched:workers`)).toBe(0);
    // No target was cut off mid-call: every call the sandbox answered was recorded.
    expect(Object.keys(t.sandbox.stats().appliedByTarget)).toHaveLength(done);
  });
});
