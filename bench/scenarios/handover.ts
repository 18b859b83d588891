/**
 * handover: the hand-over on a busy key. 3,000 alloy targets of one campaign on 20 Zipf-skewed
 * tenants (target k's share 1/(k+1)), each tenant limited to 2 calls at once, sandbox at 20 ms,
 * 3 worker processes x 50: the makespan against the ideal the bottleneck tenant allows (its
 * targets x 20 ms / 2). Three runs: fresh workers ("cold workers", the issue's shape), workers
 * that first ran a warm-up campaign of BENCH_HANDOVER_WARMUP (default 1,000) targets on the same
 * tenants ("warm workers": fresh processes add their compiling and first connections to the
 * first seconds, which is start-up, not hand-over), and warm again with BENCH_HANDOVER_BURNERS
 * (default 2, 0 skips it) busy-looping node processes beside it ("loaded").
 *
 * Where the time goes is read from the sandbox's request log: on the bottleneck key, the k-th
 * call (k >= limit) takes the slot the (k - limit + 1)-th answer freed, so its gap is its arrival
 * minus that answer's write (`answeredAt`). BullMQ's event stream says how many targets went
 * through BullMQ (an `added` job; the rest ran at once on the worker whose `finish` picked them),
 * and how many of those were added while only the bottleneck key had targets left; Redis's
 * INFO commandstats how long its scripts took. BENCH_HANDOVER_ALONE=1 (diagnosis) enqueues the
 * bottleneck tenant's targets only, to see its hand-over without the other tenants' traffic.
 * BENCH_DEBUG=1 writes each run's request log to /tmp/handover-<variant>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { readStatus } from '../../src/shared/index.js';
import { barePerCall, benchConnections, cpuMs, benchConnectionsFile, calibrationInstalls, describeStatuses, dropPrefix, median, percentile, round2, spawnWorker, stop, watchCampaigns, type BenchContext, type CampaignWatch, type Child, type Scenario } from '../helpers.js';

const HO_TARGETS = Number(process.env.BENCH_HANDOVER_TARGETS ?? 3000);
const HO_TENANTS = 20;
const HO_LIMIT = 2;
const HO_LATENCY_MS = 20;
/** BENCH_HANDOVER_WORKERS (diagnosis): the same 150 slots over that many processes. */
const HO_WORKERS = Number(process.env.BENCH_HANDOVER_WORKERS ?? 3);
const HO_WORKER_CONCURRENCY = Math.round(150 / HO_WORKERS);
const HO_BURNERS = Number(process.env.BENCH_HANDOVER_BURNERS ?? 2);
const HO_CAL_CALLS = 100;
/** Targets of the warm-up campaign run through the workers before a "warm" variant's measured one. */
const HO_WARMUP = Number(process.env.BENCH_HANDOVER_WARMUP ?? 1000);

/** `total` split over `keys` with Zipf weights 1/(k+1), rounded by largest remainder. */
function zipfCounts(total: number, keys: number): number[] {
  const weights = Array.from({ length: keys }, (_, k) => 1 / (k + 1));
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (total * w) / sum);
  const counts = exact.map(Math.floor);
  const byRemainder = exact.map((x, k) => [x - Math.floor(x), k] as const).sort((a, b) => b[0] - a[0]);
  for (let i = 0, left = total - counts.reduce((a, b) => a + b, 0); left > 0; i++, left--) counts[byRemainder[i % keys]![1]]! += 1;
  return counts;
}

/** A node process that keeps one core busy until stopped: the "loaded" variant's neighbour. */
function burner(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
}

interface HandoverRun {
  variant: string;
  burners: number;
  makespanMs: number;
  idealMs: number;
  ratio: number;
  idealAtCallMs: number | null;
  ratioAtCall: number | null;
  /** The bottleneck key: gap between an answer freeing a slot and the next call arriving (ms). */
  gapMedianMs: number | null;
  gapMeanMs: number | null;
  gapP90Ms: number | null;
  gapP99Ms: number | null;
  /** Mean time the sandbox held a bottleneck call (latency plus timer lateness), ms. */
  callMeanMs: number | null;
  /** The enqueue itself (stage and commit of every target), inside the makespan. */
  enqueueMs: number;
  bottleneckFirstCallMs: number | null;
  bottleneckLastAnswerToCompletionMs: number | null;
  /** Targets added to BullMQ (the rest ran on the worker whose `finish` picked them). */
  bullmqAdded: number | null;
  /** Of those, added after the last call on any other key (only the bottleneck key left). */
  bullmqAddedInTail: number | null;
  tailStartMs: number;
  workersCpuMsPerTarget: number;
  workersCoresBusy: number;
  redisScriptCalls: number;
  redisScriptMsPerCall: number | null;
  redisScriptBusy: number;
  barePerCallMs: number;
  maxInFlightOnBottleneck: number | undefined;
  upgraded: number;
  failed: number;
}

async function runOnce(ctx: BenchContext, variant: string, burners: number, warm: boolean, round: number): Promise<HandoverRun> {
  const { redis, redisUrl, env } = ctx;
  const prefix = `bench-handover-${round}`;
  const id = `handover-${round}`;
  const counts = zipfCounts(HO_TARGETS, HO_TENANTS);
  const bottleneck = 0;
  const idealMs = Math.ceil(counts[bottleneck]! / HO_LIMIT) * HO_LATENCY_MS;
  const sandbox: Sandbox = await startSandbox({ latencyMs: HO_LATENCY_MS, limitKeyPattern: '^alloy:[^:]+:(t\\d+)-', record: true });
  const workers: Child[] = [];
  const load: ChildProcess[] = [];
  let watch: CampaignWatch | undefined;
  try {
    // Targets in tenant-interleaved order (t0's first, t1's first, ...), as a fleet export would be.
    const targets: { userId: string; tenant: string }[] = [];
    for (let i = 0; i < counts[0]!; i++) {
      for (let k = 0; k < HO_TENANTS; k++) if (i < counts[k]! && (k === 0 || !process.env.BENCH_HANDOVER_ALONE)) targets.push({ userId: `t${k}-u${i}`, tenant: `t${k}` });
    }
    // The warm-up campaign: the same tenants, evenly, on the same workers before the measured one.
    const warmTargets = warm ? Array.from({ length: HO_WARMUP }, (_, i) => ({ userId: `t${i % HO_TENANTS}-w${i}`, tenant: `t${i % HO_TENANTS}` })) : [];
    sandbox.load({
      alloy: {
        workflows: { 'wf-ho': { latestVersion: 2 }, 'wf-ho-cal': { latestVersion: 2 }, 'wf-ho-warm': { latestVersion: 2 } },
        installs: [
          ...targets.map((t) => ({ workflowId: 'wf-ho', userId: t.userId, version: 1 })),
          ...calibrationInstalls('wf-ho-cal', HO_CAL_CALLS),
          ...warmTargets.map((t) => ({ workflowId: 'wf-ho-warm', userId: t.userId, version: 1 })),
        ],
      },
    });
    for (let i = 0; i < burners; i++) load.push(burner());
    const barePerCallMs = await barePerCall(sandbox.url, 'wf-ho-cal', HO_CAL_CALLS);
    sandbox.received!.splice(0);
    await dropPrefix(redis, prefix);
    for (let i = 0; i < HO_WORKERS; i++) {
      workers.push(await spawnWorker(HO_WORKER_CONCURRENCY, { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) }));
    }
    if (warm) {
      const warmWatch = await watchCampaigns(redisUrl, prefix, [`${id}-warm`], 'completed');
      try {
        await enqueueCampaign(
          {
            id: `${id}-warm`,
            connection: { baseUrl: sandbox.url, credentialRef: 'BENCH_ALLOY_KEY' },
            operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-ho-warm' },
            limits: [{ key: '${target.tenant}', concurrency: HO_LIMIT }],
          },
          warmTargets,
          { redis, prefix, connections: benchConnections(sandbox.url) },
        );
        await warmWatch.wait(300_000);
      } finally {
        warmWatch.close();
      }
      sandbox.received!.splice(0);
    }
    watch = await watchCampaigns(redisUrl, prefix, [id], 'completed');
    await redis.config('RESETSTAT');
    const cpuBefore = workers.reduce((a, w) => a + cpuMs(w.proc.pid!), 0);
    const t0 = Date.now();
    await enqueueCampaign(
      {
        id,
        connection: { baseUrl: sandbox.url, credentialRef: 'BENCH_ALLOY_KEY' },
        operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-ho' },
        limits: [{ key: '${target.tenant}', concurrency: HO_LIMIT }],
      },
      targets,
      { redis, prefix, connections: benchConnections(sandbox.url) },
    );
    const enqueueMs = Date.now() - t0;
    const done = await watch.wait(idealMs * 5 + 120_000, async () => describeStatuses([await readStatus(redis, prefix, id)]));
    const endAt = done.get(id)!;
    const workersCpuMs = workers.reduce((a, w) => a + cpuMs(w.proc.pid!), 0) - cpuBefore;
    const makespanMs = endAt - t0;
    const status = await readStatus(redis, prefix, id);
    // Redis's side of the hand-over: time inside scripts (finish, claim, dispatch, ...) per call.
    const evalsha = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await redis.info('commandstats'));
    const scriptCalls = Number(evalsha?.[1] ?? 0);
    const scriptUsec = Number(evalsha?.[2] ?? 0);

    const calls = sandbox.received!.filter((r) => r.path.startsWith('/workflows/wf-ho/'));
    const onKey = calls.filter((r) => r.path.includes(`userId=t${bottleneck}-`));
    const starts = onKey.map((r) => r.at).sort((a, b) => a - b);
    const ends = onKey.flatMap((r) => (r.answeredAt === undefined ? [] : [r.answeredAt])).sort((a, b) => a - b);
    // The k-th start (k >= limit) took the slot freed by the (k - limit)-th answer (0-based).
    const gaps = starts.slice(HO_LIMIT).map((s, i) => s - ends[i]!).filter((g) => Number.isFinite(g));
    const held = onKey.flatMap((r) => (r.answeredAt === undefined ? [] : [r.answeredAt - r.at]));
    const tailStart = Math.max(...calls.filter((r) => !r.path.includes(`userId=t${bottleneck}-`)).map((r) => r.at));
    if (process.env.BENCH_DEBUG) {
      const { writeFileSync } = await import('node:fs');
      writeFileSync(`/tmp/handover-${variant}.json`, JSON.stringify({ t0, endAt, calls: calls.map((r) => ({ p: r.path.split('userId=')[1], at: r.at, end: r.answeredAt })) }));
    }
    // BullMQ's events stream: one `added` per job; its entry id is the time it was added.
    let bullmqAdded: number | null = null;
    let bullmqAddedInTail: number | null = null;
    try {
      const events = (await redis.xrange(`${prefix}:targets:events`, '-', '+')) as [string, string[]][];
      const added = events.filter(([, f]) => f[1] === 'added').map(([eid]) => Number(eid.split('-')[0]));
      bullmqAdded = added.length;
      bullmqAddedInTail = added.filter((at) => at > tailStart).length;
    } catch {
      // no stream: nothing went through BullMQ's add
    }
    return {
      variant,
      burners,
      makespanMs,
      idealMs,
      ratio: round2(makespanMs / idealMs),
      // The same ideal at the call time the sandbox actually held each bottleneck call (its
      // 20 ms timer fires late on a busy machine): what no scheduler can beat.
      idealAtCallMs: held.length ? Math.round(Math.ceil(counts[bottleneck]! / HO_LIMIT) * (held.reduce((a, b) => a + b, 0) / held.length)) : null,
      ratioAtCall: held.length ? round2(makespanMs / (Math.ceil(counts[bottleneck]! / HO_LIMIT) * (held.reduce((a, b) => a + b, 0) / held.length))) : null,
      gapMedianMs: gaps.length ? median(gaps) : null,
      gapMeanMs: gaps.length ? round2(gaps.reduce((a, b) => a + b, 0) / gaps.length) : null,
      gapP90Ms: gaps.length ? percentile(gaps, 90) : null,
      gapP99Ms: gaps.length ? percentile(gaps, 99) : null,
      callMeanMs: held.length ? round2(held.reduce((a, b) => a + b, 0) / held.length) : null,
      enqueueMs,
      bottleneckFirstCallMs: starts.length ? starts[0]! - t0 : null,
      bottleneckLastAnswerToCompletionMs: ends.length ? endAt - ends.at(-1)! : null,
      bullmqAdded,
      bullmqAddedInTail,
      tailStartMs: tailStart - t0,
      // The three workers' CPU (user + system) during the run: per target, and as cores busy.
      workersCpuMsPerTarget: round2(workersCpuMs / HO_TARGETS),
      workersCoresBusy: round2(workersCpuMs / makespanMs),
      redisScriptCalls: scriptCalls,
      redisScriptMsPerCall: scriptCalls ? round2(scriptUsec / scriptCalls / 1000) : null,
      /** Share of the makespan Redis spent in scripts (one thread: the queue every hand-over waits in). */
      redisScriptBusy: round2(scriptUsec / 1000 / makespanMs),
      barePerCallMs: round2(barePerCallMs),
      maxInFlightOnBottleneck: sandbox.stats().maxInFlightByKey[`t${bottleneck}`],
      upgraded: status?.upgraded ?? 0,
      failed: status?.failed ?? 0,
    };
  } finally {
    watch?.close();
    for (const w of workers) await stop(w.proc);
    for (const b of load) await stop(b);
    await sandbox.close();
    await dropPrefix(redis, prefix);
  }
}

async function run(ctx: BenchContext) {
  const counts = zipfCounts(HO_TARGETS, HO_TENANTS);
  const runs: HandoverRun[] = [await runOnce(ctx, 'cold workers', 0, false, 0), await runOnce(ctx, 'warm workers', 0, true, 1)];
  if (HO_BURNERS > 0) runs.push(await runOnce(ctx, 'warm workers, loaded', HO_BURNERS, true, 2));
  return {
    targets: HO_TARGETS,
    tenants: HO_TENANTS,
    limit: HO_LIMIT,
    latencyMs: HO_LATENCY_MS,
    workers: HO_WORKERS,
    workerConcurrency: HO_WORKER_CONCURRENCY,
    bottleneckTargets: counts[0]!,
    goalRatio: '<= 1.10',
    runs,
  };
}

export const handover: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'handover',
  run,
  rows: (h) =>
    h.runs.map(
      (r) =>
        `| hand-over on a busy key, ${h.targets} targets on ${h.tenants} Zipf tenants at limit ${h.limit}, ${h.workers} workers x ${h.workerConcurrency}, ${h.latencyMs} ms, ${r.variant}${r.burners ? ` (${r.burners} busy-loop processes beside it)` : ''} (makespan ms; ${r.ratioAtCall} of the ideal at the ${r.callMeanMs} ms a call took; gap answer→next call on t0 median / mean / p99 ${r.gapMedianMs} / ${r.gapMeanMs} / ${r.gapP99Ms} ms; goal ratio <= 1.10) | ${r.makespanMs} | ${r.idealMs} (ideal: ${h.bottleneckTargets} x ${h.latencyMs} ms / ${h.limit}) | ${r.ratio} |`,
    ),
};
