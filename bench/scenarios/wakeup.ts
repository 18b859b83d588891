/**
 * wakeup: one key at concurrency 1. The gap between one call's arrival and the next, less the
 * bare time of one sequential call, and the makespan against n bare calls. BENCH_DEBUG=1 prints
 * the raw gaps to stderr.
 */
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { readStatus } from '../../src/shared/index.js';
import { barePerCall, benchConnections, benchConnectionsFile, calibrationInstalls, describeStatuses, dropPrefix, median, percentile, round2, spawnWorker, stop, watchCampaigns, type BenchContext, type CampaignWatch, type Child, type Scenario } from '../helpers.js';

const WAKE_TARGETS = Number(process.env.BENCH_WAKE_TARGETS ?? 500);
const WAKE_LATENCY_MS = 10;
const WAKE_WORKER_CONCURRENCY = 10;

async function run({ redis, redisUrl, env }: BenchContext) {
  const prefix = 'bench-wake';
  const n = WAKE_TARGETS;
  const id = 'wake';
  const sandbox: Sandbox = await startSandbox({ latencyMs: WAKE_LATENCY_MS, record: true });
  let worker: Child | undefined;
  let watch: CampaignWatch | undefined;
  try {
    const users = Array.from({ length: n }, (_, i) => `w-${i}`);
    sandbox.load({
      alloy: {
        workflows: { 'wf-cal': { latestVersion: 2 }, 'wf-wake': { latestVersion: 2 } },
        installs: [
          ...calibrationInstalls('wf-cal', n),
          ...users.map((userId) => ({ workflowId: 'wf-wake', userId, version: 1 })),
        ],
      },
    });

    const barePerCallMs = await barePerCall(sandbox.url, 'wf-cal', n);

    await dropPrefix(redis, prefix);
    worker = await spawnWorker(WAKE_WORKER_CONCURRENCY, { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) });
    watch = await watchCampaigns(redisUrl, prefix, [id], 'completed');
    const statsBefore = sandbox.stats().maxInFlight;
    const t0 = Date.now();
    await enqueueCampaign(
      {
        id,
        connection: { baseUrl: sandbox.url, credentialRef: 'BENCH_ALLOY_KEY' },
        operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-wake' },
        limits: [{ key: 'wake', concurrency: 1 }],
      },
      users.map((userId) => ({ userId })),
      { redis, prefix, connections: benchConnections(sandbox.url) },
    );
    const done = await watch.wait(n * (WAKE_LATENCY_MS + 50) * 5 + 60_000, async () => describeStatuses([await readStatus(redis, prefix, id)]));
    const makespanMs = done.get(id)! - t0;

    const arrivals = sandbox.received!.filter((r) => r.path.startsWith('/workflows/wf-wake/')).map((r) => r.at);
    arrivals.sort((a, b) => a - b);
    const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]! - barePerCallMs);
    const status = await readStatus(redis, prefix, id);
    if (process.env.BENCH_DEBUG) console.error('wake gaps', JSON.stringify(gaps.map(round2)));
    return {
      targets: n,
      latencyMs: WAKE_LATENCY_MS,
      workerConcurrency: WAKE_WORKER_CONCURRENCY,
      barePerCallMs: round2(barePerCallMs),
      calls: arrivals.length,
      gapMedianMs: round2(median(gaps)),
      gapP99Ms: round2(percentile(gaps, 99)),
      gapP90Ms: round2(percentile(gaps, 90)),
      gapMaxMs: round2(Math.max(...gaps)),
      gapsOver10Ms: gaps.filter((g) => g > 10).length,
      goalGapMedianMs: '<= 5',
      firstCallAfterEnqueueMs: arrivals[0]! - t0,
      makespanMs,
      bareMakespanMs: Math.round(n * barePerCallMs),
      ratio: round2(makespanMs / (n * barePerCallMs)),
      // The calibration ran one call at a time, so anything above 1 came from the campaign.
      concurrencyHeld: Math.max(statsBefore, sandbox.stats().maxInFlight) <= 1,
      upgraded: status?.upgraded ?? 0,
      failed: status?.failed ?? 0,
    };
  } finally {
    watch?.close();
    if (worker) await stop(worker.proc);
    await sandbox.close();
    await dropPrefix(redis, prefix);
  }
}

export const wakeup: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'wakeup',
  run,
  rows: (w) => [
    `| wake-up gap, ${w.targets} targets on 1 key at concurrency 1, ${w.latencyMs} ms (median / p99 ms; goal median <= 5) | ${w.gapMedianMs} / ${w.gapP99Ms} | 0 (bare call ${w.barePerCallMs} ms) | |`,
    `| wake-up makespan, ${w.targets} targets (ms) | ${w.makespanMs} | ${w.bareMakespanMs} (${w.targets} sequential bare calls) | ${w.ratio} |`,
  ],
};
