/**
 * adaptive: one connection whose platform takes 40 calls at once at 20 ms (the sandbox's
 * capacity model: slower above 40 in flight, 429 with Retry-After 1 above 80), 3 worker
 * processes x 100, alloy targets on one limit key. Side by side in one run: an adaptive
 * concurrency ({min 1, max 200, initial 4}), a fixed 8 (a cautious guess) and a fixed 200 (a
 * greedy one), a fixed 40 (the capacity known in advance: what the machine itself allows at
 * this capacity, the figure adaptive is to be read against besides the ideal), and the adaptive
 * one again with the capacity halved halfway through.
 *
 * Throughput is outcomes per second against the capacity's ideal (40 / 20 ms = 2,000/s); the
 * 429 share is the sandbox's over-capacity answers over its requests. Convergence is the time
 * from the enqueue (workers already running; the enqueue, also reported, is in every variant's
 * time) until the key's figure (sampled from Redis every 10 ms) first reaches 0.9 x the capacity
 * and the capacity. After the halving: the time until the figure is back at or under what the
 * platform answers at all (2 x the new capacity) and under the new capacity itself, the time until
 * it is at 0.9 x the new capacity again once it came down (0 when the cut landed there), and the
 * share of the samples after the halving spent under 0.9 x the new capacity. The mean figure is
 * over the samples (after the halving, for the halved variant). BENCH_ADAPT_TRACE=1 prints the
 * figure, its latencies and the sandbox's in-flight every 100 ms to stderr. A variant still
 * running after BENCH_ADAPT_MAX_MS (default 300000) is stopped and measured on what it recorded
 * by then.
 */
import { enqueueCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS, startSandbox } from '../../src/sandbox/index.js';
import { readStatus, schedulerKeys, type CampaignStatus } from '../../src/shared/index.js';
import { sandboxConnections, writeConnectionsFile } from '../../scripts/lib/connections.js';
import { describeStatuses, dropPrefix, round2, spawnWorker, stop, watchCampaigns, type BenchContext, type Child, type Scenario } from '../helpers.js';

const TARGETS = Number(process.env.BENCH_ADAPT_TARGETS ?? 20_000);
const MAX_MS = Number(process.env.BENCH_ADAPT_MAX_MS ?? 300_000);
const CAPACITY = 40;
const LATENCY_MS = 20;
const WORKERS = 3;
const WORKER_CONCURRENCY = 100;
const IDEAL_PER_S = (CAPACITY / LATENCY_MS) * 1000;
const CONN = 'BENCH_ADAPT_KEY';
const KEY = `${CONN}/platform`;

type Concurrency = number | { adaptive: { min: number; max: number; initial: number } };

interface Variant {
  readonly name: string;
  readonly concurrency: Concurrency;
  /** Halve the capacity once this share of the targets has been answered. */
  readonly halveAt?: number;
}

const VARIANTS: readonly Variant[] = [
  { name: 'adaptive', concurrency: { adaptive: { min: 1, max: 200, initial: 4 } } },
  { name: 'fixed 8', concurrency: 8 },
  { name: 'fixed 200', concurrency: 200 },
  // The reference: the capacity known in advance, the best a guess can do on this machine.
  { name: 'fixed 40 (the capacity, known in advance)', concurrency: 40 },
  { name: 'adaptive, capacity halved at 50%', concurrency: { adaptive: { min: 1, max: 200, initial: 4 } }, halveAt: 0.5 },
];

interface VariantResult {
  name: string;
  targets: number;
  recorded: number;
  upgraded: number;
  failed: number;
  finished: boolean;
  elapsedMs: number;
  perSecond: number;
  ofIdeal: number;
  requests: number;
  overCapacity: number;
  share429: number;
  maxInFlight: number;
  /** ms the enqueue of the targets took (the clock starts before it). */
  enqueueMs: number;
  /** Adaptive only: ms from the enqueue until the figure first reached 0.9 x the capacity (null: never). */
  nearMs: number | null;
  /** Adaptive only: ms from the enqueue until the figure first reached the capacity (null: never). */
  convergedMs: number | null;
  /** Halved only: ms from the halving until the figure was at or under 2 x the new capacity (null: never). */
  backUnderMs: number | null;
  /** Halved only: ms from the halving until the figure was at or under the new capacity (null: never). */
  underNewMs: number | null;
  /** Halved only: ms from the halving until the figure, having come down, was at 0.9 x the new capacity again (null: never). */
  climbBackMs: number | null;
  /** Halved only: share of the samples after the halving with the figure under 0.9 x the new capacity. */
  lowShare: number | null;
  /** Adaptive only: the mean sampled figure (after the halving, for the halved variant). */
  meanFigure: number | null;
  finalFigure: number | null;
}

async function runVariant({ redis, redisUrl, env }: BenchContext, v: Variant, index: number): Promise<VariantResult> {
  const prefix = `bench-adapt-${index}`;
  const sandbox = await startSandbox({ latencyMs: LATENCY_MS, capacity: CAPACITY, record: !!process.env.BENCH_ADAPT_GAPS });
  const workers: Child[] = [];
  const users = Array.from({ length: TARGETS }, (_, i) => `ad${i}`);
  sandbox.load({ alloy: { workflows: { 'wf-ad': { latestVersion: 2 } }, installs: users.map((userId) => ({ workflowId: 'wf-ad', userId, version: 1 })) } });
  const connections = sandboxConnections(sandbox.url, [CONN]);
  await dropPrefix(redis, prefix);
  const id = 'adapt';
  const watch = await watchCampaigns(redisUrl, prefix, [id], 'ended');
  let sampler: NodeJS.Timeout | undefined;
  try {
    // Workers first, so the clock starts with the campaign, not with three processes booting.
    const workerEnv = { ...env, [CONN]: SANDBOX_KEYS.alloy, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: writeConnectionsFile(connections) };
    for (let i = 0; i < WORKERS; i++) workers.push(await spawnWorker(WORKER_CONCURRENCY, workerEnv));
    const t0 = Date.now();
    await enqueueCampaign(
      { id, connection: CONN, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-ad' }, limits: [{ key: 'platform', concurrency: v.concurrency }] },
      users.map((userId) => ({ userId })),
      { redis, prefix, connections },
    );
    const enqueueMs = Date.now() - t0;

    let nearMs: number | null = null;
    let convergedMs: number | null = null;
    let halvedAt: number | null = null;
    let backUnderMs: number | null = null;
    let underNewMs: number | null = null;
    let climbBackMs: number | null = null;
    let samples = 0;
    let lowSamples = 0;
    let figureSum = 0;
    let sampling = false;
    let lastTrace = 0;
    const NEW_CAPACITY = CAPACITY / 2;
    const trace = process.env.BENCH_ADAPT_TRACE === '1' && typeof v.concurrency !== 'number';
    sampler = setInterval(() => {
      if (sampling) return;
      sampling = true;
      void redis
        .hmget(schedulerKeys(prefix).adapt(KEY), 'c', 'min', 'base', 'ss')
        .then(([c, avg, base, ss]) => {
          const figure = c === null ? null : Math.floor(Number(c));
          const now = Date.now();
          const stats = sandbox.counters();
          if (figure !== null && nearMs === null && figure >= 0.9 * CAPACITY) nearMs = now - t0;
          if (figure !== null && convergedMs === null && figure >= CAPACITY) convergedMs = now - t0;
          if (v.halveAt !== undefined && halvedAt === null && stats.requests - stats.overCapacity >= TARGETS * v.halveAt) {
            sandbox.configure({ capacity: NEW_CAPACITY });
            halvedAt = now;
          }
          if (figure !== null && (v.halveAt === undefined || halvedAt !== null)) {
            samples += 1;
            figureSum += figure;
            if (halvedAt !== null && figure < 0.9 * NEW_CAPACITY) lowSamples += 1;
          }
          if (halvedAt !== null && figure !== null) {
            if (backUnderMs === null && figure <= 2 * NEW_CAPACITY) backUnderMs = now - halvedAt;
            if (underNewMs === null && figure <= NEW_CAPACITY) underNewMs = now - halvedAt;
            if (climbBackMs === null && backUnderMs !== null && figure >= 0.9 * NEW_CAPACITY) climbBackMs = now - halvedAt;
          }
          if (trace && now - lastTrace >= 100) {
            lastTrace = now;
            process.stderr.write(`${v.name} t=${now - t0} c=${c === null ? '-' : Number(c).toFixed(1)} min=${avg === null ? '-' : Number(avg).toFixed(1)} base=${base === null ? '-' : Number(base).toFixed(1)} ss=${ss} inflight=${stats.inFlight} req=${stats.requests} 429=${stats.overCapacity}${halvedAt === null ? '' : ' (halved)'}\n`);
          }
        })
        .finally(() => (sampling = false));
    }, 10);

    let finished = true;
    try {
      await watch.wait(MAX_MS, async () => describeStatuses([await readStatus(redis, prefix, id)]));
    } catch {
      finished = false; // measured on what it recorded by now
    }
    const elapsedMs = Date.now() - t0;
    clearInterval(sampler);
    const status = (await readStatus(redis, prefix, id)) as CampaignStatus;
    const stats = sandbox.stats();
    const recorded = status.upgraded + status.failed + status.skipped;
    const c = await redis.hget(schedulerKeys(prefix).adapt(KEY), 'c');
    if (sandbox.received && typeof v.concurrency === 'number') {
      // Diagnosis (BENCH_ADAPT_GAPS=1): at a fixed figure F, the k-th call took the slot the (k - F)-th answer freed.
      const starts = sandbox.received.map((r) => r.at).sort((a, b) => a - b);
      const ends = sandbox.received.flatMap((r) => (r.answeredAt === undefined ? [] : [r.answeredAt])).sort((a, b) => a - b);
      const held = sandbox.received.flatMap((r) => (r.answeredAt === undefined ? [] : [r.answeredAt - r.at])).sort((a, b) => a - b);
      const gaps = starts.slice(v.concurrency).map((x, i) => x - ends[i]!).sort((a, b) => a - b);
      const q = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * p))];
      process.stderr.write(`${v.name}: gap answer->next call p10/p50/p90/p99 ${q(gaps, 0.1)}/${q(gaps, 0.5)}/${q(gaps, 0.9)}/${q(gaps, 0.99)} ms, mean ${(gaps.reduce((a, b) => a + b, 0) / gaps.length).toFixed(2)}; call held p50/p90 ${q(held, 0.5)}/${q(held, 0.9)} ms\n`);
    }
    return {
      name: v.name,
      targets: TARGETS,
      recorded,
      upgraded: status.upgraded,
      failed: status.failed,
      finished,
      elapsedMs,
      perSecond: Math.round((recorded / elapsedMs) * 1000),
      ofIdeal: round2(((recorded / elapsedMs) * 1000) / IDEAL_PER_S),
      requests: stats.requests,
      overCapacity: stats.overCapacity,
      share429: stats.requests === 0 ? 0 : Math.round((stats.overCapacity / stats.requests) * 10_000) / 10_000,
      maxInFlight: stats.maxInFlight,
      enqueueMs,
      nearMs: typeof v.concurrency === 'number' ? null : nearMs,
      convergedMs: typeof v.concurrency === 'number' ? null : convergedMs,
      backUnderMs,
      underNewMs,
      climbBackMs,
      lowShare: halvedAt === null || samples === 0 ? null : round2(lowSamples / samples),
      meanFigure: typeof v.concurrency === 'number' || samples === 0 ? null : Math.round(figureSum / samples),
      finalFigure: c === null ? null : Math.floor(Number(c)),
    };
  } finally {
    clearInterval(sampler);
    watch.close();
    for (const w of workers) await stop(w.proc);
    await sandbox.close();
    await dropPrefix(redis, prefix);
  }
}

async function run(ctx: BenchContext) {
  const variants: VariantResult[] = [];
  // BENCH_ADAPT_VARIANTS=0,3,4 (indices into VARIANTS) runs a few, for a quick loop while tuning.
  const only = process.env.BENCH_ADAPT_VARIANTS?.split(',').map(Number);
  for (const [i, v] of VARIANTS.entries()) if (!only || only.includes(i)) variants.push(await runVariant(ctx, v, i));
  return { capacity: CAPACITY, latencyMs: LATENCY_MS, workers: WORKERS, workerConcurrency: WORKER_CONCURRENCY, idealPerSecond: IDEAL_PER_S, variants };
}

const ms = (x: number | null): string => (x === null ? 'never' : `${round2(x / 1000)} s`);

export const adaptive: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'adaptive',
  run,
  rows: (r) =>
    r.variants.map((v) => {
      const done = v.finished ? `${v.recorded} targets in ${ms(v.elapsedMs)}` : `stopped after ${ms(v.elapsedMs)} with ${v.recorded} of ${v.targets} recorded`;
      const extra = [
        `429s ${round2(v.share429 * 100)}% of ${v.requests} calls`,
        `most in flight ${v.maxInFlight}`,
        ...(v.name.startsWith('adaptive')
          ? [`reached ${0.9 * r.capacity} after ${ms(v.nearMs)}, ${r.capacity} after ${ms(v.convergedMs)} (enqueue ${ms(v.enqueueMs)})`, `mean figure ${v.meanFigure}`]
          : []),
        ...(v.name.includes('halved')
          ? [
              `after halving: at or under ${r.capacity} in ${ms(v.backUnderMs)}, under ${r.capacity / 2} in ${ms(v.underNewMs)}, back at ${0.9 * (r.capacity / 2)} in ${ms(v.climbBackMs)}, under it ${v.lowShare === null ? '?' : Math.round(v.lowShare * 100)}% of the time`,
            ]
          : []),
        ...(v.failed > 0 ? [`${v.failed} failed`] : []),
      ].join('; ');
      return `| adaptive concurrency, capacity ${r.capacity} at ${r.latencyMs} ms, ${r.workers} workers x ${r.workerConcurrency}: **${v.name}** (${done}; ${extra}) | ${v.perSecond}/s | ${r.idealPerSecond}/s (ideal) | ${v.ofIdeal} |`;
    }),
};
