/**
 * scaleout: alloy targets, no limits, 1 / 2 / 4 worker processes at concurrency 50, in steady
 * state. Each point is three runs with the same process count: the machine's CPU ceiling (sandbox
 * at 0 ms, BENCH_SCALE_CEILING_SECONDS of steady state, default 10), the point itself (sandbox
 * at 50 ms, BENCH_SCALE_SECONDS of steady state, default 30), and the bare BullMQ + undici
 * pipeline in the point's shape (the same window). Throughput is outcomes counted in
 * the status hash over a steady-state window: from BENCH_SCALE_WARMUP_SECONDS (default 3) after
 * the enqueue ended to the window's end, with targets enough that the campaign is still running
 * then (start-up and drain are outside the window; the workers are stopped after it). The point
 * is reported against min(ideal, ceiling): the ideal processes x concurrency / latency, the
 * ceiling what the same processes reach when the platform costs nothing. The ratio then says what
 * Upshift costs, not what two cores cost. At 50 ms a target costs more CPU than at 0 ms (fewer
 * answers share each wake-up of the event loop), so on a slow machine the 0 ms ceiling overstates
 * what the cores allow at 50 ms; the bare pipeline beside it says what they allow any pipeline.
 */
import { cpus } from 'node:os';
import { Queue } from 'bullmq';
import { enqueueCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { campaignKeys, readStatus } from '../../src/shared/index.js';
import { bare as bareWorker, benchConnections, benchConnectionsFile, cpuMs, describeStatuses, dropPrefix, round2, spawnUntil, spawnWorker, stop, type BenchContext, type Child, type Scenario } from '../helpers.js';

const SCALE_SECONDS = Number(process.env.BENCH_SCALE_SECONDS ?? 30);
const SCALE_CEILING_SECONDS = Number(process.env.BENCH_SCALE_CEILING_SECONDS ?? 10);
const SCALE_WARMUP_SECONDS = Number(process.env.BENCH_SCALE_WARMUP_SECONDS ?? 3);
const SCALE_MAX_WARMUP_SECONDS = Number(process.env.BENCH_SCALE_MAX_WARMUP_SECONDS ?? 15);
/** Steady: the rate over the last RATE_SPAN_MS within this fraction of the span's before it. */
const STEADY_TOLERANCE = 0.1;
const RATE_SPAN_MS = 2000;
/** Targets/s the ceiling run is sized for (more than this machine's 4 processes reach at 0 ms). */
const SCALE_CEILING_SIZING_PER_S = Number(process.env.BENCH_SCALE_CEILING_SIZING ?? 10_000);
const SCALE_LATENCY_MS = 50;
const SCALE_WORKER_CONCURRENCY = 50;
const SCALE_PROCESSES = (process.env.BENCH_SCALE_PROCESSES ?? '1,2,4').split(",").map(Number);
const SAMPLE_MS = 250;
const BARE_QUEUE = 'bare';
const BARE_WORKFLOW = 'wf-bench';

interface Window {
  /** Outcomes per second over the steady-state window. */
  targetsPerS: number;
  windowS: number;
  outcomesInWindow: number;
  /** The campaign ran out of targets before the window's end (the window was cut short). */
  ranOut: boolean;
  enqueueMs: number;
  /** From the enqueue's end to the window's start: until the rate held steady. */
  warmupS: number;
  targets: number;
  sandboxMaxInFlight: number;
  failed: number;
  /** CPU (workers + Redis + the sandbox's process) per outcome in the window, ms. */
  cpuMsPerTarget: number;
  redisScriptsPerOutcome: number;
  redisScriptMsPerCall: number | null;
}

/**
 * One campaign of `n` targets on `processes` fresh workers, measured over the steady-state window.
 * `bare`: the same targets as jobs of a plain BullMQ queue on as many bench/bare-worker.ts
 * processes (a BullMQ Worker and one undici call a job, nothing recorded): the pipeline Upshift
 * is measured against in the throughput scenario, here in the same shape as the point.
 */
async function measure(ctx: BenchContext, processes: number, latencyMs: number, windowS: number, n: number, tag: string, bare = false): Promise<Window> {
  const { redis, env } = ctx;
  const prefix = `bench-scale-${tag}`;
  const id = `scale-${tag}`;
  const workflowId = `wf-scale-${tag}`;
  const users = Array.from({ length: n }, (_, i) => `s${tag}-${i}`);
  const sandbox: Sandbox = await startSandbox({ latencyMs });
  const workers: Child[] = [];
  try {
    // bare-worker.ts calls workflow wf-bench.
    const installed = bare ? BARE_WORKFLOW : workflowId;
    sandbox.load({ alloy: { workflows: { [installed]: { latestVersion: 2 } }, installs: users.map((userId) => ({ workflowId: installed, userId, version: 1 })) } });
    await dropPrefix(redis, prefix);
    for (let i = 0; i < processes; i++) {
      workers.push(
        bare
          ? // Each process counts only its own jobs: it never reaches this count, and is stopped after the window.
            await spawnUntil([bareWorker, sandbox.url, BARE_QUEUE, prefix, String(SCALE_WORKER_CONCURRENCY), String(n + 1), SANDBOX_KEYS.alloy], env, 'bare worker ready')
          : await spawnWorker(SCALE_WORKER_CONCURRENCY, { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) }),
      );
    }
    const t0 = Date.now();
    // CPU used by the pipeline (the workers, Redis, and this process, which serves the sandbox).
    const cpu = async (): Promise<number> => {
      const info = await redis.info('cpu');
      const redisS = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? NaN) + Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? NaN);
      const own = process.cpuUsage();
      return workers.reduce((a, w) => a + cpuMs(w.proc.pid!), 0) + redisS * 1000 + (own.user + own.system) / 1000;
    };
    const scripts = async (): Promise<[number, number]> => {
      const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await redis.info('commandstats'));
      return [Number(m?.[1] ?? 0), Number(m?.[2] ?? 0)];
    };
    if (bare) {
      // The jobs as the throughput scenario's baseline adds them, into a paused queue: the workers
      // are up already, and adding 200,000 jobs takes seconds they would spend competing for CPU.
      const queue = new Queue(BARE_QUEUE, { connection: redis, prefix });
      try {
        await queue.pause();
        for (let i = 0; i < users.length; i += 1000) {
          await queue.addBulk(users.slice(i, i + 1000).map((userId) => ({ name: 'u', data: { userId }, opts: { removeOnComplete: true } })));
        }
        await queue.resume();
      } finally {
        await queue.close();
      }
    } else {
      await enqueueCampaign(
        { id, connection: { baseUrl: sandbox.url, credentialRef: 'BENCH_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId } },
        users.map((userId) => ({ userId })),
        { redis, prefix, connections: benchConnections(sandbox.url) },
      );
    }
    const enqueued = Date.now();
    const statusKey = campaignKeys(prefix, id).status;
    const outcomes = async (): Promise<{ at: number; done: number; failed: number }> => {
      if (bare) {
        // Its jobs leave nothing behind (removeOnComplete): its outcomes are the calls the sandbox
        // answered, one a job; in steady state they come at the rate its jobs complete.
        const c = sandbox.counters();
        return { at: Date.now(), done: c.requests - c.inFlight, failed: 0 };
      }
      const [u, s, f] = await redis.hmget(statusKey, 'upgraded', 'skipped', 'failed');
      const failed = Number(f ?? 0);
      return { at: Date.now(), done: Number(u ?? 0) + Number(s ?? 0) + failed, failed };
    };
    // Warm-up (connections, JIT, the first dispatch) ends once the rate over the last
    // RATE_SPAN_MS is within STEADY_TOLERANCE of the span's before it, and not before
    // BENCH_SCALE_WARMUP_SECONDS nor after BENCH_SCALE_MAX_WARMUP_SECONDS: on a loaded machine
    // four fresh processes took over 10 s to reach their rate.
    const minFrom = enqueued + SCALE_WARMUP_SECONDS * 1000;
    const maxFrom = enqueued + SCALE_MAX_WARMUP_SECONDS * 1000;
    const samples: { at: number; done: number; failed: number }[] = [await outcomes()];
    const rateOver = (end: number, spanMs: number): number | undefined => {
      const b = samples[end]!;
      let a = end;
      while (a > 0 && b.at - samples[a]!.at < spanMs) a--;
      return b.at - samples[a]!.at >= spanMs ? (b.done - samples[a]!.done) / (b.at - samples[a]!.at) : undefined;
    };
    let first: { at: number; done: number } | undefined;
    let scriptsAtFirst: [number, number] = [0, 0];
    let cpuAtFirst = 0;
    let until = Infinity;
    let last = samples[0]!;
    let ranOut = false;
    // The drain (fewer targets left than the workers run at once) is not steady state.
    const drainAt = n - processes * SCALE_WORKER_CONCURRENCY;
    for (;;) {
      await new Promise((r) => setTimeout(r, SAMPLE_MS));
      const s = await outcomes();
      if (process.env.BENCH_DEBUG) console.error(`scaleout ${tag}: ${s.at - enqueued} ms after enqueue, ${s.done} outcomes`);
      if (s.done >= drainAt) {
        ranOut = true;
        break;
      }
      samples.push(s);
      last = s;
      if (first === undefined && s.at >= minFrom) {
        const now = rateOver(samples.length - 1, RATE_SPAN_MS);
        let before: number | undefined;
        for (let i = samples.length - 1; i >= 0; i--) {
          if (s.at - samples[i]!.at >= RATE_SPAN_MS) {
            before = rateOver(i, RATE_SPAN_MS);
            break;
          }
        }
        const steady = now !== undefined && before !== undefined && before > 0 && Math.abs(now / before - 1) <= STEADY_TOLERANCE;
        if (steady || s.at >= maxFrom) {
          first = s;
          scriptsAtFirst = await scripts();
          cpuAtFirst = await cpu();
          until = s.at + windowS * 1000;
        }
      }
      if (s.at >= until) break;
    }
    if (first === undefined || last.at <= first.at) {
      throw new Error(`scaleout ${tag}: the campaign ran out of targets before a steady-state window (${n} targets)${bare ? '' : `: ${describeStatuses([await readStatus(redis, prefix, id)])}`}`);
    }
    const windowMs = last.at - first.at;
    const [calls, usec] = await scripts();
    const cpuInWindow = (await cpu()) - cpuAtFirst;
    // Scripts per outcome in the window: 1 when each finish picks and claims the next target
    // itself; a target through BullMQ adds its add, move and claim scripts. Diagnosis.
    const scriptCalls = calls - scriptsAtFirst[0];
    return {
      targetsPerS: Math.round(((last.done - first.done) * 1000) / windowMs),
      windowS: round2(windowMs / 1000),
      outcomesInWindow: last.done - first.done,
      ranOut,
      enqueueMs: enqueued - t0,
      warmupS: round2((first.at - enqueued) / 1000),
      targets: n,
      sandboxMaxInFlight: sandbox.stats().maxInFlight,
      failed: last.failed,
      cpuMsPerTarget: round2(cpuInWindow / Math.max(1, last.done - first.done)),
      redisScriptsPerOutcome: round2(scriptCalls / Math.max(1, last.done - first.done)),
      redisScriptMsPerCall: scriptCalls > 0 ? round2((usec - scriptsAtFirst[1]) / scriptCalls / 1000) : null,
    };
  } finally {
    for (const w of workers) await stop(w.proc);
    await sandbox.close();
    await dropPrefix(redis, prefix);
  }
}

interface ScalePoint {
  processes: number;
  concurrency: number;
  idealTargetsPerS: number;
  ceiling: Window;
  point: Window;
  /** min(ideal, this process count's own ceiling at 0 ms): the issue's bound. */
  boundTargetsPerS: number;
  boundIs: 'ideal' | 'ceiling';
  /** min(ideal, the best ceiling at 0 ms with at most this many processes). */
  bestBoundTargetsPerS: number;
  targetsPerS: number;
  ratio: number;
  ratioToBestBound: number;
  ratioToIdeal: number;
  /**
   * What the machine's cores would allow at the CPU the pipeline spent per target in this
   * point's own window (cores x 1000 / ms per target): the ceiling of a machine with nothing
   * else on it, which external load cannot lower (CPU time is counted per process).
   */
  cpuBoundTargetsPerS: number;
  ratioToCpuBound: number;
  /** The bare BullMQ + undici pipeline in the same shape (processes, concurrency, latency, window). */
  bare: Window;
  /** Upshift / bare: what Upshift costs against the pipeline without its bookkeeping, on the same machine state. */
  ratioToBare: number;
}

async function run(ctx: BenchContext) {
  const points: ScalePoint[] = [];
  const t0 = Date.now();
  let bestCeiling = 0;
  for (const processes of SCALE_PROCESSES) {
    const idealPerS = (processes * SCALE_WORKER_CONCURRENCY) / (SCALE_LATENCY_MS / 1000);
    const span = SCALE_MAX_WARMUP_SECONDS + 3;
    const ceiling = await measure(ctx, processes, 0, SCALE_CEILING_SECONDS, Math.ceil(SCALE_CEILING_SIZING_PER_S * (SCALE_CEILING_SECONDS + span)), `${processes}-ceiling`);
    const pointTargets = Math.ceil(idealPerS * 1.1 * (SCALE_SECONDS + span));
    const point = await measure(ctx, processes, SCALE_LATENCY_MS, SCALE_SECONDS, pointTargets, `${processes}-${SCALE_LATENCY_MS}ms`);
    const bare = await measure(ctx, processes, SCALE_LATENCY_MS, SCALE_SECONDS, pointTargets, `${processes}-${SCALE_LATENCY_MS}ms-bare`, true);
    // More busy processes than cores take CPU from Redis (one thread, the pipeline's shared
    // stage), so at 0 ms four processes can do less than one: "at most p processes" is the
    // ceiling p processes could have had, the same-count one the issue's bound.
    bestCeiling = Math.max(bestCeiling, ceiling.targetsPerS);
    const bound = Math.min(idealPerS, ceiling.targetsPerS);
    const bestBound = Math.min(idealPerS, bestCeiling);
    const cpuBound = Math.round((cpus().length * 1000) / point.cpuMsPerTarget);
    points.push({
      processes,
      concurrency: SCALE_WORKER_CONCURRENCY,
      idealTargetsPerS: Math.round(idealPerS),
      ceiling,
      point,
      boundTargetsPerS: bound,
      boundIs: bound === idealPerS ? 'ideal' : 'ceiling',
      bestBoundTargetsPerS: bestBound,
      targetsPerS: point.targetsPerS,
      ratio: round2(point.targetsPerS / bound),
      ratioToBestBound: round2(point.targetsPerS / bestBound),
      ratioToIdeal: round2(point.targetsPerS / idealPerS),
      cpuBoundTargetsPerS: cpuBound,
      ratioToCpuBound: round2(point.targetsPerS / Math.min(idealPerS, cpuBound)),
      bare,
      ratioToBare: round2(point.targetsPerS / bare.targetsPerS),
    });
  }
  return {
    latencyMs: SCALE_LATENCY_MS,
    steadySeconds: SCALE_SECONDS,
    ceilingSeconds: SCALE_CEILING_SECONDS,
    warmupSeconds: SCALE_WARMUP_SECONDS,
    maxWarmupSeconds: SCALE_MAX_WARMUP_SECONDS,
    goalRatio: '>= 0.9 of min(ideal, ceiling)',
    wallSeconds: Math.round((Date.now() - t0) / 1000),
    points,
  };
}

export const scaleout: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'scaleout',
  run,
  rows: (so) =>
    so.points.map(
      (p) =>
        `| scale-out, ${p.processes} worker process${p.processes > 1 ? 'es' : ''} x ${p.concurrency}, ${so.latencyMs} ms, steady state over ${p.point.windowS} s after ${p.point.warmupS} s${p.point.ranOut ? ' (ran out early)' : ''} (targets/s; ceiling at 0 ms, same processes: ${p.ceiling.targetsPerS}/s; vs min(ideal, best ceiling with <= ${p.processes}): ${p.ratioToBestBound}; vs ideal ${p.ratioToIdeal}; CPU ${p.point.cpuMsPerTarget} ms a target, so min(ideal, cores' bound ${p.cpuBoundTargetsPerS}/s): ${p.ratioToCpuBound}; bare BullMQ + undici in the same shape ${p.bare.targetsPerS}/s (CPU ${p.bare.cpuMsPerTarget} ms a target), Upshift / bare ${p.ratioToBare}; goal >= 0.9) | ${p.targetsPerS} | ${p.boundTargetsPerS} (${p.boundIs === 'ideal' ? `ideal ${p.processes} x ${p.concurrency} / ${so.latencyMs} ms` : `ceiling; ideal ${p.idealTargetsPerS}`}) | ${p.ratio} |`,
    ),
};
