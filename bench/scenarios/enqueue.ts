/**
 * enqueue: `upshift enqueue` (CLI child process) from an NDJSON file against a bare
 * Queue.addBulk in chunks of 1,000 (in-process, at most 200,000 jobs): targets/s, Redis bytes
 * per pending target (no worker running), producer peak RSS.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import { readStatus } from '../../src/shared/index.js';
import { benchConnectionsFile, cli, describeStatuses, dropPrefix, round2, runMeasured, usedMemory, type BenchContext, type Scenario } from '../helpers.js';

const ENQUEUE = Number(process.env.BENCH_ENQUEUE ?? 1_000_000);
/** The bare addBulk baseline is capped: 1M jobs take long and much Redis memory. */
const ENQUEUE_BASELINE = Math.min(ENQUEUE, 200_000);

async function run({ redis, redisUrl, sandboxUrl: url }: BenchContext) {
  const prefix = 'bench-enq';
  const barePrefix = 'bench-enq-bare';
  const line = (i: number): string => `{"userId":"user-${String(i).padStart(12, '0')}"}`;
  const dir = mkdtempSync(join(tmpdir(), 'upshift-bench-'));
  try {
    const specPath = join(dir, 'spec.json');
    const ndjsonPath = join(dir, 'targets.ndjson');
    writeFileSync(
      specPath,
      JSON.stringify({ id: 'bench-enqueue', connection: { baseUrl: url, credentialRef: 'X' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' } }),
    );
    writeFileSync(ndjsonPath, Array.from({ length: ENQUEUE }, (_, i) => line(i)).join('\n') + '\n');
    await dropPrefix(redis, prefix);
    await dropPrefix(redis, barePrefix);

    // Upshift: the CLI as an operator runs it, wall clock from spawn to exit (process start included).
    const mem0 = await usedMemory(redis);
    const run = await runMeasured([cli, 'enqueue', specPath, '--targets', ndjsonPath, '--json'], {
      REDIS_URL: redisUrl,
      UPSHIFT_PREFIX: prefix,
      UPSHIFT_CONNECTIONS: benchConnectionsFile(url),
      LOG_LEVEL: 'warn',
    });
    if (run.code !== 0) throw new Error(`upshift enqueue exited ${run.code}: ${run.stderr.slice(0, 2000)}`);
    const printed = JSON.parse(run.stdout.trim().split('\n').pop()!) as { campaignId: string; total: number };
    if (printed.total !== ENQUEUE) throw new Error(`upshift enqueue staged ${printed.total} of ${ENQUEUE} targets`);
    // Measured after the producer's connection is gone and with no worker on this prefix.
    const upBytes = ((await usedMemory(redis)) - mem0) / ENQUEUE;
    const status = await readStatus(redis, prefix, printed.campaignId);
    if (status?.pending !== ENQUEUE) throw new Error(`after enqueue: ${describeStatuses([status])}`);
    await dropPrefix(redis, prefix);

    // Baseline: in-process addBulk x 1000 of the same lines, capped at ENQUEUE_BASELINE jobs.
    const mem1 = await usedMemory(redis);
    const q = new Queue('bare', { connection: redis, prefix: barePrefix });
    const t2 = performance.now();
    for (let i = 0; i < ENQUEUE_BASELINE; i += 1000) {
      const jobs = [];
      for (let j = i; j < Math.min(i + 1000, ENQUEUE_BASELINE); j++) jobs.push({ name: 'u', data: JSON.parse(line(j)) as object });
      await q.addBulk(jobs);
    }
    const bareMs = performance.now() - t2;
    const bareBytes = ((await usedMemory(redis)) - mem1) / ENQUEUE_BASELINE;
    await q.close();
    await dropPrefix(redis, barePrefix);

    const upRate = ENQUEUE / (run.ms / 1000);
    const bareRate = ENQUEUE_BASELINE / (bareMs / 1000);
    return {
      targets: ENQUEUE,
      baselineJobs: ENQUEUE_BASELINE,
      upshiftMs: Math.round(run.ms),
      upshiftTargetsPerS: Math.round(upRate),
      bareTargetsPerS: Math.round(bareRate),
      ratio: round2(upRate / bareRate),
      upshiftRedisBytesPerTarget: Math.round(upBytes),
      bareRedisBytesPerTarget: Math.round(bareBytes),
      producerPeakRssMb: Math.round(run.peakRssMb),
      producerRssMeasuredWith: run.rssHow,
      goals: { targetsPerS: '>= 100000', redisBytesPerTarget: '<= 150', producerPeakRssMb: '< 200' },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const enqueue: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'enqueue',
  sharedSandbox: true,
  run,
  rows: (e) => {
    const capped = e.baselineJobs < e.targets ? `, ${e.baselineJobs} jobs` : '';
    return [
      `| enqueue ${e.targets} targets from NDJSON, \`upshift enqueue\` child process incl. start-up (targets/s; goal >= 100000) | ${e.upshiftTargetsPerS} | ${e.bareTargetsPerS} (addBulk x 1000 in-process${capped}) | ${e.ratio} |`,
      `| Redis bytes per pending target (goal <= 150) | ${e.upshiftRedisBytesPerTarget} | ${e.bareRedisBytesPerTarget} | |`,
      `| producer peak RSS, enqueue ${e.targets} (MB; goal < 200) | ${e.producerPeakRssMb} | n/a (in-process) | |`,
    ];
  },
};
