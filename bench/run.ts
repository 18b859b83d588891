/**
 * `npm run bench`: measured figures, each against a baseline run side by side on the same
 * Redis and sandbox. Prints a table (the one BENCHMARKS.md copies) and writes bench/results.json.
 * Each scenario is a module of bench/scenarios/ (what it measures is said at its top); this file
 * starts Redis and the shared sandbox, runs the chosen scenarios in order and prints their rows.
 *
 *   throughput  Upshift worker vs a bare BullMQ worker + undici, alloy targets, zero latency
 *   cluster     the throughput shape on a 3-master loopback Redis Cluster vs the single Redis, same run
 *   enqueue     `upshift enqueue` from an NDJSON file vs bare Queue.addBulk in chunks of 1,000
 *   limits      utilisation under per-key concurrency limits (Zipf keys, limits 1-5)
 *   wakeup      one key at concurrency 1: the gap between one call and the next
 *   scaleout    1 / 2 / 4 worker processes in steady state against min(ideal, the 0 ms ceiling)
 *   handover    a busy key at limit 2 (20 Zipf tenants, 20 ms): makespan vs its ideal, quiet and loaded
 *   conflicts   nected.updateWorkflow at 30% simulated concurrent edits: calls per target
 *   retryafter  the latest arrival inside a Retry-After pause against pauseGateMs
 *   undo        bytes each operation keeps per target to undo it, next to its record; calls with undo on/off
 *   adaptive    one connection of capacity 40 at 20 ms: adaptive concurrency vs fixed 8 vs fixed 200 (and the capacity halved)
 *
 * Sizes: BENCH_TARGETS (default 100000), BENCH_ENQUEUE (default 1000000), BENCH_ROUNDS (default 5),
 * BENCH_LIMIT_TARGETS (default 20000), BENCH_WAKE_TARGETS (default 500), BENCH_SCALE_SECONDS
 * (default 30, steady-state seconds per scale-out point; BENCH_SCALE_CEILING_SECONDS, default 10,
 * for its 0 ms ceiling; BENCH_SCALE_WARMUP_SECONDS / BENCH_SCALE_MAX_WARMUP_SECONDS, 3 / 15;
 * BENCH_SCALE_PROCESSES, default 1,2,4), BENCH_HANDOVER_TARGETS (default 3000;
 * BENCH_HANDOVER_BURNERS, default 2, busy loops for its loaded run, 0 skips it),
 * BENCH_CLUSTER_TARGETS (default 30000; BENCH_CLUSTER_ROUNDS, default 3), BENCH_CONFLICT_TARGETS (default 2000), BENCH_RA_TARGETS (default 8000),
 * BENCH_UNDO_TARGETS (default 200, per operation), BENCH_ADAPT_TARGETS (default 20000, per variant;
 * BENCH_ADAPT_MAX_MS, default 300000, stops a variant that is still running and measures what it recorded).
 * BENCH_ONLY (optional, comma separated: throughput,cluster,enqueue,limits,wakeup,scaleout,handover,conflicts,retryafter,undo,adaptive)
 * runs a subset; its figures replace only those scenarios' entries in bench/results.json, each
 * stamped with the subset run's machine and date.
 * BENCH_CPU_PROF=<dir> writes the throughput workers' CPU profiles (`node --cpu-prof`) there;
 * `node dist/bench/profile.js <file.cpuprofile>` sums them up.
 * BENCH_DEBUG=1 prints the raw wake-up gaps and the limits bottleneck key's long spacings to stderr,
 * scaleout's outcome counts as it samples them, and writes handover's request logs to /tmp.
 *
 * Every scenario uses its own key prefix (UPSHIFT_PREFIX for its workers) and deletes its keys
 * when it ends; every process it starts is stopped before the next scenario.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { Redis } from 'ioredis';
import { SANDBOX_KEYS } from '../src/sandbox/index.js';
import { startPrivateRedis, type TestRedis } from '../scripts/lib/private-redis.js';
import { cli, spawnUntil, stop, type BenchContext, type Scenario } from './helpers.js';
import { adaptive } from './scenarios/adaptive.js';
import { cluster } from './scenarios/cluster.js';
import { conflicts } from './scenarios/conflicts.js';
import { enqueue } from './scenarios/enqueue.js';
import { handover } from './scenarios/handover.js';
import { limits } from './scenarios/limits.js';
import { retryafter } from './scenarios/retryafter.js';
import { scaleout } from './scenarios/scaleout.js';
import { throughput } from './scenarios/throughput.js';
import { undo } from './scenarios/undo.js';
import { wakeup } from './scenarios/wakeup.js';

/** In the order they run and print; the shared-sandbox ones come first (it is stopped after them). */
const SCENARIOS: readonly Scenario[] = [throughput, cluster, enqueue, limits, wakeup, scaleout, handover, conflicts, retryafter, undo, adaptive];

const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
const enabled = (s: Scenario): boolean => ONLY === null || ONLY.has(s.name);

async function main(): Promise<void> {
  const redisInfo: TestRedis = process.env.REDIS_URL
    ? { url: process.env.REDIS_URL, how: 'REDIS_URL', stop: async () => undefined }
    : await startPrivateRedis();
  const redis = new Redis(redisInfo.url, { maxRetriesPerRequest: null });
  const sandbox = await spawnUntil([cli, 'sandbox', '--port', '0'], {}, 'listening on');
  const results: Record<string, unknown> = {};
  try {
    const ctx: BenchContext = {
      redis,
      redisUrl: redisInfo.url,
      sandboxUrl: /listening on (\S+)/.exec(sandbox.readyLine)![1]!,
      env: { REDIS_URL: redisInfo.url, BENCH_ALLOY_KEY: SANDBOX_KEYS.alloy, BENCH_NECTED_KEY: SANDBOX_KEYS.nected, LOG_LEVEL: 'warn' },
    };
    for (const s of SCENARIOS) if (s.sharedSandbox && enabled(s)) results[s.name] = await s.run(ctx);
    await stop(sandbox.proc); // the next scenarios start their own sandboxes, with their options
    for (const s of SCENARIOS) if (!s.sharedSandbox && enabled(s)) results[s.name] = await s.run(ctx);
  } finally {
    await stop(sandbox.proc);
    redis.disconnect();
    await redisInfo.stop();
  }

  const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const date = new Date().toISOString();
  const file = new URL('../../bench/results.json', import.meta.url);
  // A subset run keeps the other scenarios' figures from the last run that measured them; its
  // own entries say when and where they were measured, as the file's top does for a whole run.
  const out =
    ONLY !== null && existsSync(file)
      ? { ...(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>), ...Object.fromEntries(Object.entries(results).map(([k, v]) => [k, { machine, redis: redisInfo.how, date, ...(v as object) }])) }
      : { machine, redis: redisInfo.how, date, ...results };
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`machine: ${machine}`);
  console.log('| scenario | Upshift | baseline | ratio |');
  console.log('|---|---|---|---|');
  for (const s of SCENARIOS) if (s.name in results) for (const row of s.rows(results[s.name])) console.log(row);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
