/**
 * scaleout: alloy targets, 50 ms sandbox latency, no limits, 1 / 2 / 4 worker processes at
 * concurrency 50: targets/s from enqueue to the campaign's end against the ideal
 * processes x concurrency / latency.
 */
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { readStatus } from '../../src/shared/index.js';
import { benchConnections, benchConnectionsFile, describeStatuses, dropPrefix, round2, spawnWorker, stop, watchCampaigns, type BenchContext, type CampaignWatch, type Child, type Scenario } from '../helpers.js';

const SCALE_TARGETS = Number(process.env.BENCH_SCALE_TARGETS ?? 4000);
const SCALE_LATENCY_MS = 50;
const SCALE_WORKER_CONCURRENCY = 50;
const SCALE_PROCESSES = [1, 2, 4] as const;

interface ScaleRun {
  processes: number;
  concurrency: number;
  enqueueMs: number;
  makespanMs: number;
  targetsPerS: number;
  idealTargetsPerS: number;
  ratio: number;
  sandboxMaxInFlight: number;
  sandboxRequests: number;
  upgraded: number;
  failed: number;
}

async function run({ redis, redisUrl, env }: BenchContext) {
  const n = SCALE_TARGETS;
  const sandbox: Sandbox = await startSandbox({ latencyMs: SCALE_LATENCY_MS });
  const runs: ScaleRun[] = [];
  try {
    for (const processes of SCALE_PROCESSES) {
      const prefix = `bench-scale-${processes}`;
      const id = `scale-${processes}`;
      const workflowId = `wf-scale-${processes}`;
      const users = Array.from({ length: n }, (_, i) => `s${processes}-${i}`);
      const workers: Child[] = [];
      let watch: CampaignWatch | undefined;
      try {
        sandbox.reset();
        sandbox.load({ alloy: { workflows: { [workflowId]: { latestVersion: 2 } }, installs: users.map((userId) => ({ workflowId, userId, version: 1 })) } });
        await dropPrefix(redis, prefix);
        for (let i = 0; i < processes; i++) {
          workers.push(await spawnWorker(SCALE_WORKER_CONCURRENCY, { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) }));
        }
        watch = await watchCampaigns(redisUrl, prefix, [id], 'ended');
        const idealPerS = (processes * SCALE_WORKER_CONCURRENCY) / (SCALE_LATENCY_MS / 1000);
        const t0 = Date.now();
        await enqueueCampaign(
          { id, connection: { baseUrl: sandbox.url, credentialRef: 'BENCH_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId } },
          users.map((userId) => ({ userId })),
          { redis, prefix, connections: benchConnections(sandbox.url) },
        );
        const enqueueMs = Date.now() - t0;
        const ended = await watch.wait((n / idealPerS) * 1000 * 10 + 120_000, async () => describeStatuses([await readStatus(redis, prefix, id)]));
        const makespanMs = ended.get(id)! - t0;
        const status = await readStatus(redis, prefix, id);
        const stats = sandbox.stats();
        const rate = n / (makespanMs / 1000);
        runs.push({
          processes,
          concurrency: SCALE_WORKER_CONCURRENCY,
          enqueueMs,
          makespanMs,
          targetsPerS: Math.round(rate),
          idealTargetsPerS: Math.round(idealPerS),
          ratio: round2(rate / idealPerS),
          sandboxMaxInFlight: stats.maxInFlight,
          sandboxRequests: stats.requests,
          upgraded: status?.upgraded ?? 0,
          failed: status?.failed ?? 0,
        });
      } finally {
        watch?.close();
        for (const w of workers) await stop(w.proc);
        await dropPrefix(redis, prefix);
      }
    }
  } finally {
    await sandbox.close();
  }
  return { targets: n, latencyMs: SCALE_LATENCY_MS, runs };
}

export const scaleout: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'scaleout',
  run,
  rows: (so) =>
    so.runs.map(
      (r) =>
        `| scale-out, ${so.targets} alloy targets, ${r.processes} worker process${r.processes > 1 ? 'es' : ''} x ${r.concurrency}, ${so.latencyMs} ms (targets/s) | ${r.targetsPerS} | ${r.idealTargetsPerS} (ideal ${r.processes} x ${r.concurrency} / ${so.latencyMs} ms) | ${r.ratio} |`,
    ),
};
