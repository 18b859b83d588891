import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { campaignKeys, streamReport, TARGET_QUEUE, type ConnectionRegistry } from '../../src/shared/index.js';
import { alloyFleet, spawnWorker, type WorkerProcess } from '../support/fleet.js';
import { deletePrefix, newRedis, redisUrl, testPrefix, waitForCompletion } from '../support/harness.js';
import { testConnections, connectionsFile } from '../support/connections.js';

describe('worker processes', () => {
  let redis: Redis;
  let prefix: string;
  let sandbox: Sandbox;
  let procs: WorkerProcess[];
  let connections: ConnectionRegistry;
  let connectionsPath: string;

  beforeEach(async () => {
    redis = newRedis();
    prefix = testPrefix();
    sandbox = await startSandbox({ latencyMs: 20 });
    procs = [];
    connections = testConnections(sandbox.url);
    connectionsPath = connectionsFile(connections);
  });
  afterEach(async () => {
    for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await sandbox.close();
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  const env = () => ({ REDIS_URL: redisUrl(), UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: connectionsPath });
  // Short leases and locks so a killed worker's targets come back within the test's time.
  const fastStall = ['--lease-ms', '1500', '--lock-duration-ms', '1000', '--stalled-interval-ms', '500'];

  it('a SIGKILLed worker mid-campaign: another finishes it with exact counters', async () => {
    const fleet = alloyFleet(400);
    sandbox.load(fleet.fixtures);

    const { campaignId } = await enqueueCampaign(
      { id: 'crash', connection: { baseUrl: sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } },
      fleet.targets,
      { redis, prefix, connections },
    );
    const doomed = await spawnWorker(env(), ['--concurrency', '10', ...fastStall]);
    procs.push(doomed);
    await sandbox.requestsReached(60);
    doomed.proc.kill('SIGKILL');
    expect((await doomed.exited).signal).toBe('SIGKILL');

    const survivor = await spawnWorker(env(), ['--concurrency', '10', ...fastStall]);
    procs.push(survivor);
    const status = await waitForCompletion(prefix, campaignId);

    expect(status).toMatchObject({ state: 'completed', total: 400, upgraded: 400, skipped: 0, failed: 0, pending: 0, active: 0 });
    // The killed worker's leases expired and their targets were requeued by the scheduler.
    expect(status.reclaimed).toBeGreaterThan(0);
    expect(await redis.hlen(campaignKeys(prefix, campaignId).outcomes)).toBe(400);
    let lines = 0;
    for await (const line of streamReport(redis, prefix, campaignId)) {
      expect(line.outcome).toBe('upgraded');
      lines++;
    }
    expect(lines).toBe(400);
    // Every install moved; a target in flight at the kill may have been called twice, never more
    // than the killed worker's concurrency in all.
    const applied = sandbox.stats().appliedByTarget;
    expect(Object.keys(applied)).toHaveLength(400);
    const extra = Object.values(applied).reduce((a, b) => a + b, 0) - 400;
    expect(extra).toBeLessThanOrEqual(10);
    console.log(`SIGKILL test: ${extra} target(s) applied twice (bound: 10, the killed worker's concurrency)`);

    survivor.proc.kill('SIGTERM');
    expect((await survivor.exited).code).toBe(0);
  });

  it('SIGTERM: the worker finishes in-flight targets and exits 0', async () => {
    sandbox.configure({ latencyMs: 400 });
    const fleet = alloyFleet(30);
    sandbox.load(fleet.fixtures);
    const events = new QueueEvents(TARGET_QUEUE, { connection: { url: redisUrl() } as never, prefix });
    await events.waitUntilReady();
    let active = 0;
    const busy = new Promise<void>((resolve) => events.on('active', () => ++active === 5 && resolve()));
    const { campaignId } = await enqueueCampaign(
      { id: 'term', connection: { baseUrl: sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } },
      fleet.targets,
      { redis, prefix, connections },
    );
    const w = await spawnWorker(env(), ['--concurrency', '5']);
    procs.push(w);
    await busy;
    w.proc.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
    await events.close();

    const keys = campaignKeys(prefix, campaignId);
    const done = await redis.hlen(keys.outcomes);
    expect(done).toBeGreaterThanOrEqual(5);
    expect(done).toBeLessThan(30);
    expect(await redis.llen(`${prefix}:targets:active`)).toBe(0);
    // Every slot a run of the stopped worker held is released; what is still held belongs to
    // targets dispatched but not started (no run token), which any other worker picks up.
    const inflight = Object.values(await redis.hgetall(`${prefix}:sched:inflight`));
    expect(inflight.filter((v) => !/^\d+\|\|/.test(v))).toEqual([]);
    expect(await redis.zcard(`${prefix}:sched:workers`)).toBe(0);
    // No target was cut off mid-call: every call the sandbox answered was recorded.
    expect(Object.keys(sandbox.stats().appliedByTarget)).toHaveLength(done);
  });
});
