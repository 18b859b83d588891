import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { alloyFleet, spawnWorker, type WorkerProcess } from '../support/fleet.js';
import { deletePrefix, newRedis, redisUrl, testPrefix, waitForCompletion } from '../support/harness.js';
import { recordFigures } from './figures.js';

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

describe('worker memory', () => {
  let redis: Redis;
  let prefix: string;
  let sandbox: Sandbox;
  let worker: WorkerProcess | undefined;

  beforeEach(async () => {
    redis = newRedis();
    prefix = testPrefix();
    sandbox = await startSandbox();
  });
  afterEach(async () => {
    if (worker && worker.proc.exitCode === null) worker.proc.kill('SIGKILL');
    await worker?.exited;
    await sandbox.close();
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  it('stays flat: RSS after 200,000 targets is within 20% of RSS after 20,000', async () => {
    const n = 200_000;
    const fleet = alloyFleet(n);
    sandbox.load(fleet.fixtures);
    worker = await spawnWorker({ REDIS_URL: redisUrl(), UPSHIFT_PREFIX: prefix }, ['--concurrency', '50']);
    const spec = { id: 'mem', connection: { baseUrl: sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } };
    await enqueueCampaign(spec, fleet.targets, { redis, prefix });
    await sandbox.requestsReached(20_000);
    const early = rssMb(worker.proc.pid!);
    const status = await waitForCompletion(prefix, 'mem', 240_000);
    const late = rssMb(worker.proc.pid!);
    expect(status).toMatchObject({ upgraded: n, pending: 0, active: 0 });
    const growth = late / early;
    console.log(`worker RSS: ${early.toFixed(0)} MB after 20,000 targets, ${late.toFixed(0)} MB after ${n}`);
    recordFigures('memory', { targets: n, rssAfter20kMb: Math.round(early), rssAfter200kMb: Math.round(late), ratio: Number(growth.toFixed(2)), bound: 1.2 });
    expect(growth).toBeLessThanOrEqual(1.2);
  });
});
