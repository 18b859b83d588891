/**
 * conflicts: nected.updateWorkflow with 30% simulated concurrent edits, one worker at
 * concurrency 50, no latency: platform calls per upgraded target against 2 (GET + PATCH, no
 * conflicts) and the expected 2 / (1 - 0.3).
 */
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { readStatus } from '../../src/shared/index.js';
import { nectedGraph } from '../../scripts/lib/fixtures.js';
import { benchConnections, benchConnectionsFile, describeStatuses, dropPrefix, round2, spawnWorker, stop, watchCampaigns, type BenchContext, type CampaignWatch, type Child, type Scenario } from '../helpers.js';

const CONFLICT_TARGETS = Number(process.env.BENCH_CONFLICT_TARGETS ?? 2000);
const CONFLICT_RATE = 0.3;
const CONFLICT_WORKER_CONCURRENCY = 50;

async function run({ redis, redisUrl, env }: BenchContext) {
  const prefix = 'bench-conflicts';
  const id = 'conflicts';
  const n = CONFLICT_TARGETS;
  const sandbox: Sandbox = await startSandbox({ latencyMs: 0, conflictRate: CONFLICT_RATE });
  let worker: Child | undefined;
  let watch: CampaignWatch | undefined;
  try {
    const ids = Array.from({ length: n }, (_, i) => `w-${i}`);
    sandbox.load({ nected: { workflows: ids.map((entityId) => ({ entityId, branch: 'main', graph: nectedGraph(entityId) })) } });
    await dropPrefix(redis, prefix);
    worker = await spawnWorker(CONFLICT_WORKER_CONCURRENCY, { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) });
    watch = await watchCampaigns(redisUrl, prefix, [id], 'ended');
    const t0 = Date.now();
    await enqueueCampaign(
      {
        id,
        connection: { baseUrl: sandbox.url, credentialRef: 'BENCH_NECTED_KEY' },
        operation: { type: 'nected.updateWorkflow', branch: 'main', conflictRetries: 20, patch: [{ op: 'replace', path: '/settings/auditIO', value: true }] },
      },
      ids.map((entityId) => ({ entityId })),
      { redis, prefix, connections: benchConnections(sandbox.url) },
    );
    const ended = await watch.wait(n * 50 + 120_000, async () => describeStatuses([await readStatus(redis, prefix, id)]));
    const status = await readStatus(redis, prefix, id);
    const stats = sandbox.stats();
    const upgraded = status?.upgraded ?? 0;
    const patched = sandbox.state().nected!.workflows!.filter((w) => (w.graph.settings as { auditIO?: boolean } | undefined)?.auditIO === true).length;
    return {
      targets: n,
      conflictRate: CONFLICT_RATE,
      latencyMs: 0,
      workerConcurrency: CONFLICT_WORKER_CONCURRENCY,
      makespanMs: ended.get(id)! - t0,
      sandboxRequests: stats.requests,
      byStatus: stats.byStatus,
      callsPerUpgraded: upgraded > 0 ? Math.round((stats.requests / upgraded) * 1000) / 1000 : null,
      idealCallsPerTarget: 2,
      expectedCallsPerTarget: Math.round((2 / (1 - CONFLICT_RATE)) * 1000) / 1000,
      statusConflicts: status?.conflicts ?? 0,
      sandboxConflicts: stats.faults.conflicts,
      // Conflicts per target a geometric number of rounds gives: p / (1 - p).
      expectedConflicts: Math.round((n * CONFLICT_RATE) / (1 - CONFLICT_RATE)),
      upgraded,
      failed: status?.failed ?? 0,
      patchedInSandbox: patched,
    };
  } finally {
    watch?.close();
    if (worker) await stop(worker.proc);
    await sandbox.close();
    await dropPrefix(redis, prefix);
  }
}

export const conflicts: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'conflicts',
  run,
  rows: (c) => [
    `| nected conflicts, ${c.targets} targets, conflictRate ${c.conflictRate}, 1 worker x ${c.workerConcurrency} (calls per upgraded target) | ${c.callsPerUpgraded} | 2 (no conflicts); ${c.expectedCallsPerTarget} expected at ${c.conflictRate * 100}% | ${c.callsPerUpgraded === null ? '' : round2(c.callsPerUpgraded / c.expectedCallsPerTarget)} |`,
    `| nected conflicts counted (status hash / sandbox; upgraded ${c.upgraded}, failed ${c.failed}) | ${c.statusConflicts} | ${c.sandboxConflicts} (sandbox); ${c.expectedConflicts} expected | |`,
  ],
};
