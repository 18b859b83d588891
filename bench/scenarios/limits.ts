/**
 * limits: utilisation under per-key concurrency limits. Zipf-weighted keys with limits 1-5,
 * several worker processes; makespan against the ideal the limits allow, and the sandbox's max
 * in-flight per key against each key's limit. BENCH_DEBUG=1 prints the bottleneck key's long
 * spacings to stderr.
 */
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { readStatus } from '../../src/shared/index.js';
import { barePerCall, benchConnections, benchConnectionsFile, calibrationInstalls, describeStatuses, dropPrefix, median, percentile, round2, spawnWorker, stop, watchCampaigns, type BenchContext, type CampaignWatch, type Child, type Scenario } from '../helpers.js';

const LIMIT_TARGETS = Number(process.env.BENCH_LIMIT_TARGETS ?? 20_000);
const LIMIT_KEYS = 50;
const LIMIT_LATENCY_MS = 20;
const LIMIT_WORKERS = 3;
const LIMIT_WORKER_CONCURRENCY = 50;
/** Campaign j holds the keys k with k % LIMIT_CAMPAIGNS == j, limited to concurrency j + 1. */
const LIMIT_CAMPAIGNS = 5;
const LIMIT_CAL_CALLS = 200;

/** `total` split over `keys` keys with Zipf weights 1/(k+1), rounded by largest remainder. */
function zipfCounts(total: number, keys: number): number[] {
  const weights = Array.from({ length: keys }, (_, k) => 1 / (k + 1));
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (total * w) / sum);
  const counts = exact.map(Math.floor);
  let left = total - counts.reduce((a, b) => a + b, 0);
  const byRemainder = exact.map((x, k) => [x - Math.floor(x), k] as const).sort((a, b) => b[0] - a[0]);
  for (let i = 0; left > 0; i++, left--) {
    const k = byRemainder[i % keys]![1];
    counts[k] = counts[k]! + 1;
  }
  return counts;
}

async function run({ redis, redisUrl, env }: BenchContext) {
  const prefix = 'bench-limits';
  const counts = zipfCounts(LIMIT_TARGETS, LIMIT_KEYS);
  const limitOf = (k: number): number => 1 + (k % LIMIT_CAMPAIGNS);
  const ids = Array.from({ length: LIMIT_CAMPAIGNS }, (_, j) => `limits-${j}`);
  const capacity = LIMIT_WORKERS * LIMIT_WORKER_CONCURRENCY;
  const perKeyIdeal = counts.map((n, k) => Math.ceil(n / limitOf(k)) * LIMIT_LATENCY_MS);
  const idealMs = Math.max(Math.max(...perKeyIdeal), (LIMIT_TARGETS * LIMIT_LATENCY_MS) / capacity);
  const bottleneckKey = perKeyIdeal.indexOf(Math.max(...perKeyIdeal));

  // Recorded so the bottleneck key's call spacing can be read back (diagnosis, not the measure).
  const sandbox: Sandbox = await startSandbox({ latencyMs: LIMIT_LATENCY_MS, limitKeyPattern: '^alloy:[^:]+:(t\\d+)-', record: true });
  const workers: Child[] = [];
  let watch: CampaignWatch | undefined;
  try {
    // Targets interleaved over keys (key 0's first target, key 1's first, ...), split by campaign.
    const installs: { workflowId: string; userId: string; version: number }[] = [];
    const perCampaign: { userId: string; tenant: string }[][] = ids.map(() => []);
    for (let i = 0; i < counts[0]!; i++) {
      for (let k = 0; k < LIMIT_KEYS; k++) {
        if (i >= counts[k]!) continue;
        const userId = `t${k}-u${i}`;
        installs.push({ workflowId: 'wf-lim', userId, version: 1 });
        perCampaign[k % LIMIT_CAMPAIGNS]!.push({ userId, tenant: `t${k}` });
      }
    }
    sandbox.load({ alloy: { workflows: { 'wf-lim': { latestVersion: 2 }, 'wf-lim-cal': { latestVersion: 2 } }, installs: [...installs, ...calibrationInstalls('wf-lim-cal', LIMIT_CAL_CALLS)] } });
    // Diagnosis only: what one sequential call costs at this latency, HTTP and timers included.
    const barePerCallMs = await barePerCall(sandbox.url, 'wf-lim-cal', LIMIT_CAL_CALLS);
    sandbox.received!.splice(0);

    await dropPrefix(redis, prefix);
    for (let i = 0; i < LIMIT_WORKERS; i++) {
      workers.push(await spawnWorker(LIMIT_WORKER_CONCURRENCY, { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) }));
    }
    watch = await watchCampaigns(redisUrl, prefix, ids, 'completed');

    const t0 = Date.now();
    await Promise.all(
      ids.map((id, j) =>
        enqueueCampaign(
          {
            id,
            connection: { baseUrl: sandbox.url, credentialRef: 'BENCH_ALLOY_KEY' },
            operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-lim' },
            limits: [{ key: '${target.tenant}', concurrency: j + 1 }],
          },
          perCampaign[j]!,
          { redis, prefix, connections: benchConnections(sandbox.url) },
        ),
      ),
    );
    const enqueueMs = Date.now() - t0;
    const done = await watch.wait(idealMs * 5 + 120_000, async () =>
      describeStatuses(await Promise.all(ids.map((id) => readStatus(redis, prefix, id)))),
    );
    const makespanMs = Math.max(...done.values()) - t0;

    const statuses = await Promise.all(ids.map((id) => readStatus(redis, prefix, id)));
    const upgraded = statuses.reduce((a, s) => a + (s?.upgraded ?? 0), 0);
    const failed = statuses.reduce((a, s) => a + (s?.failed ?? 0), 0);
    const stats = sandbox.stats();
    const bottleneckPath = `/workflows/wf-lim/upgrade?userId=t${bottleneckKey}-`;
    const arrivals = sandbox.received!.filter((r) => r.path.startsWith(bottleneckPath)).map((r) => r.at);
    arrivals.sort((a, b) => a - b);
    const spacing = arrivals.slice(1).map((at, i) => at - arrivals[i]!);
    if (process.env.BENCH_DEBUG) {
      console.error('bottleneck spacing > 40 ms (at ms after enqueue, spacing):', JSON.stringify(spacing.flatMap((g, i) => (g > 40 ? [[arrivals[i]! - t0, g]] : []))));
      const lastOther = Math.max(...sandbox.received!.filter((r) => r.path.startsWith('/workflows/wf-lim/') && !r.path.startsWith(bottleneckPath)).map((r) => r.at));
      console.error('last call on any other key, ms after enqueue:', lastOther - t0);
    }
    const campaignCalls = sandbox.received!.filter((r) => r.path.startsWith('/workflows/wf-lim/')).length;
    const violations: Record<string, { max: number; limit: number }> = {};
    const unseen: string[] = [];
    for (let k = 0; k < LIMIT_KEYS; k++) {
      const max = stats.maxInFlightByKey[`t${k}`];
      if (max === undefined) unseen.push(`t${k}`);
      else if (max > limitOf(k)) violations[`t${k}`] = { max, limit: limitOf(k) };
    }
    // Keys that reached their limit: with enough targets every key should (else capacity was short).
    const keysAtLimit = Array.from({ length: LIMIT_KEYS }, (_, k) => k).filter(
      (k) => stats.maxInFlightByKey[`t${k}`] === limitOf(k),
    ).length;
    return {
      targets: LIMIT_TARGETS,
      keys: LIMIT_KEYS,
      campaigns: LIMIT_CAMPAIGNS,
      latencyMs: LIMIT_LATENCY_MS,
      workers: LIMIT_WORKERS,
      workerConcurrency: LIMIT_WORKER_CONCURRENCY,
      targetsPerKey: counts,
      bottleneckKey: `t${bottleneckKey}`,
      bottleneckKeyTargets: counts[bottleneckKey],
      bottleneckKeyLimit: limitOf(bottleneckKey),
      enqueueMs,
      // Diagnosis: the bottleneck key's calls, arrival to arrival, against one bare sequential call.
      barePerCallMs: round2(barePerCallMs),
      bottleneckSpacingMedianMs: spacing.length ? median(spacing) : null,
      bottleneckSpacingMeanMs: spacing.length ? round2((arrivals.at(-1)! - arrivals[0]!) / spacing.length) : null,
      bottleneckSpacingP99Ms: spacing.length ? percentile(spacing, 99) : null,
      bottleneckFirstCallAfterEnqueueMs: arrivals.length ? arrivals[0]! - t0 : null,
      bottleneckLastCallToCompletionMs: arrivals.length ? Math.max(...done.values()) - arrivals.at(-1)! : null,
      idealAtBareCallMs: Math.round(Math.max(...counts.map((n, k) => Math.ceil(n / limitOf(k)))) * barePerCallMs),
      makespanMs,
      idealMs: Math.round(idealMs),
      ratio: round2(makespanMs / idealMs),
      goalRatio: '<= 1.10',
      limitsHeld: Object.keys(violations).length === 0 && unseen.length === 0,
      violations,
      keysNeverSeen: unseen,
      keysThatReachedTheirLimit: keysAtLimit,
      sandboxMaxInFlight: stats.maxInFlight,
      sandboxRequests: campaignCalls,
      upgraded,
      failed,
      completeAndCorrect: upgraded === LIMIT_TARGETS && failed === 0 && campaignCalls === LIMIT_TARGETS,
    };
  } finally {
    watch?.close();
    for (const w of workers) await stop(w.proc);
    await sandbox.close();
    await dropPrefix(redis, prefix);
  }
}

export const limits: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'limits',
  run,
  rows: (l) => [
    `| limits utilisation, ${l.targets} targets on ${l.keys} Zipf keys, limits 1-5, ${l.workers} workers x ${l.workerConcurrency}, ${l.latencyMs} ms (makespan ms; goal ratio <= 1.10) | ${l.makespanMs} | ${l.idealMs} (ideal) | ${l.ratio} |`,
    `| limits held (sandbox max in-flight per key <= limit) | ${l.limitsHeld ? 'yes' : 'NO'} | | |`,
  ],
};
