/**
 * throughput: the Upshift worker against a bare BullMQ worker + undici (bench/bare-worker.ts),
 * alloy targets, sandbox at zero latency, BENCH_ROUNDS rounds of both back to back.
 * BENCH_CPU_PROF=<dir> writes both workers' CPU profiles there (bench/profile.ts sums them up).
 */
import { once } from 'node:events';
import { Queue } from 'bullmq';
import { enqueueCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS } from '../../src/sandbox/index.js';
import { campaignKeys } from '../../src/shared/index.js';
import { bare, benchConnections, benchConnectionsFile, dropPrefix, median, peakRssMb, post, round2, spawnUntil, spawnWorker, stop, watchCampaigns, type BenchContext, type Scenario } from '../helpers.js';

const TARGETS = Number(process.env.BENCH_TARGETS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONCURRENCY = 100;
/** BENCH_CPU_PROF=<dir>: the throughput scenario's worker processes write V8 CPU profiles there. */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;
const cpuProfFlags = (name: string): string[] =>
  CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`, `--cpu-prof-name=${name}.cpuprofile`] : [];

async function run({ redis, redisUrl, sandboxUrl: url, env }: BenchContext) {
  const users = Array.from({ length: TARGETS }, (_, i) => `user-${i}`);
  const upshiftMs: number[] = [];
  const bareMs: number[] = [];
  const upshiftRss: number[] = [];
  const bareRss: number[] = [];
  const markerBytes: number[] = [];
  const recordBytes: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await post(`${url}/__sandbox/reset`, {});
    await post(`${url}/__sandbox/fixtures`, {
      alloy: { workflows: { 'wf-bench': { latestVersion: 2 } }, installs: users.map((userId) => ({ workflowId: 'wf-bench', userId, version: 1 })) },
    });

    // bare: jobs first, then the worker, timed from ready to the N-th completion
    const barePrefix = `bench-bare-${round}`;
    const q = new Queue('bare', { connection: redis, prefix: barePrefix });
    for (let i = 0; i < users.length; i += 1000) {
      await q.addBulk(users.slice(i, i + 1000).map((userId) => ({ name: 'u', data: { userId }, opts: { removeOnComplete: true } })));
    }
    await q.close();
    const b = await spawnUntil([...cpuProfFlags(`bare-${round}`), bare, url, 'bare', barePrefix, String(CONCURRENCY), String(TARGETS), SANDBOX_KEYS.alloy], env, 'bare worker ready');
    const it = b.lines[Symbol.asyncIterator]();
    for (;;) {
      const { value } = await it.next();
      if (value?.startsWith('done ')) {
        bareMs.push(Number(value.slice(5)));
        break;
      }
    }
    bareRss.push(peakRssMb(b.proc.pid!));
    await once(b.proc, 'exit');

    // upshift: campaign first, then the worker, timed from ready to the completion event
    const upPrefix = `bench-up-${round}`;
    const { campaignId } = await enqueueCampaign(
      { connection: { baseUrl: url, credentialRef: 'BENCH_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-bench' } },
      users.map((userId) => ({ userId })),
      { redis, prefix: upPrefix, connections: benchConnections(url) },
    );
    const watch = await watchCampaigns(redisUrl, upPrefix, [campaignId], 'ended');
    const w = await spawnWorker(CONCURRENCY, { ...env, UPSHIFT_PREFIX: upPrefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(url) }, cpuProfFlags(`upshift-${round}`));
    const t0 = Date.now();
    await watch.wait();
    upshiftMs.push(Date.now() - t0);
    upshiftRss.push(peakRssMb(w.proc.pid!));
    await stop(w.proc);
    watch.close();
    // What a finished target leaves: its marker in the deployment's slot, its record in the
    // campaign's own (the worker archived every record before it exited).
    const keys = campaignKeys(upPrefix, campaignId);
    if ((await redis.exists(keys.outbox)) !== 0) throw new Error('bench: records left in the outbox after a graceful stop');
    markerBytes.push(Number(await redis.memory('USAGE', keys.outcomes, 'SAMPLES', 0)) / TARGETS);
    recordBytes.push(Number(await redis.memory('USAGE', keys.records, 'SAMPLES', 0)) / TARGETS);
    await dropPrefix(redis, barePrefix);
    await dropPrefix(redis, upPrefix);
  }
  const upRate = TARGETS / (median(upshiftMs) / 1000);
  const bareRate = TARGETS / (median(bareMs) / 1000);
  // Each round runs both pipelines back to back, so its ratio is measured on one state of the
  // machine; the median of those ratios shrugs off a VM that speeds up or slows down between
  // rounds (measured: bare BullMQ alone ranged 5,900-11,000 targets/s across runs of one day).
  const roundRatios = upshiftMs.map((ms, i) => bareMs[i]! / ms);
  return {
    targets: TARGETS,
    concurrency: CONCURRENCY,
    rounds: ROUNDS,
    upshiftTargetsPerS: Math.round(upRate),
    bareTargetsPerS: Math.round(bareRate),
    roundRatios: roundRatios.map(round2),
    ratio: round2(median(roundRatios)),
    upshiftPeakRssMb: Math.round(median(upshiftRss)),
    barePeakRssMb: Math.round(median(bareRss)),
    finishedBytesDeploymentSlot: Math.round(median(markerBytes)),
    finishedBytesCampaignSlot: Math.round(median(recordBytes)),
  };
}

export const throughput: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'throughput',
  sharedSandbox: true,
  run,
  rows: (t) => [
    `| throughput, ${t.targets} alloy targets, concurrency ${t.concurrency} (targets/s, medians; ratio: median of the ${t.rounds} rounds' ratios ${t.roundRatios.join(' ')}) | ${t.upshiftTargetsPerS} | ${t.bareTargetsPerS} (bare BullMQ + undici) | ${t.ratio} |`,
    `| worker peak RSS (MB) | ${t.upshiftPeakRssMb} | ${t.barePeakRssMb} | |`,
    `| Redis bytes per finished target: deployment slot (marker) / campaign slot (record) | ${t.finishedBytesDeploymentSlot} / ${t.finishedBytesCampaignSlot} | 0 (removeOnComplete) | |`,
  ],
};
