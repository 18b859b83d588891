import { sandboxConnections, writeConnectionsFile } from '../scripts/lib/connections.js';
/**
 * `npm run bench`: measured figures, each against a baseline run side by side on the same
 * Redis and sandbox. Prints a table and writes bench/results.json.
 *
 *   throughput  Upshift worker vs a bare BullMQ worker + undici, alloy targets, zero latency
 *   enqueue     `upshift enqueue` (CLI child process) from an NDJSON file vs bare Queue.addBulk in
 *               chunks of 1,000 (in-process, at most 200,000 jobs): targets/s, Redis bytes per
 *               pending target (no worker running), producer peak RSS
 *   limits      utilisation under per-key concurrency limits: Zipf-weighted keys with limits 1-5,
 *               several worker processes; makespan against the ideal the limits allow, and the
 *               sandbox's max in-flight per key against each key's limit
 *   wakeup      one key at concurrency 1: the gap between one call's arrival and the next, less
 *               the bare time of one sequential call, and the makespan against n bare calls
 *   scaleout    alloy targets, 50 ms sandbox latency, no limits, 1 / 2 / 4 worker processes at
 *               concurrency 50: targets/s from enqueue to the campaign's end against the ideal
 *               processes x concurrency / latency
 *   conflicts   nected.updateWorkflow with 30% simulated concurrent edits, one worker at
 *               concurrency 50, no latency: platform calls per upgraded target against 2 (GET +
 *               PATCH, no conflicts) and the expected 2 / (1 - 0.3)
 *   retryafter  alloy targets over 8 connections, 5% answered 429 with Retry-After: 1, 2 worker
 *               processes x 25: the latest arrival at the sandbox inside a pause, counted from
 *               when the 429 was recorded in Redis, against the send gate's bound (pauseGateMs).
 *               The chaos test checks the same with a margin for a loaded machine; this is the
 *               figure on a quiet one, where the sandbox's view is not held up
 *
 * Sizes: BENCH_TARGETS (default 100000), BENCH_ENQUEUE (default 1000000), BENCH_ROUNDS (default 5),
 * BENCH_LIMIT_TARGETS (default 20000), BENCH_WAKE_TARGETS (default 500), BENCH_SCALE_TARGETS
 * (default 4000), BENCH_CONFLICT_TARGETS (default 2000), BENCH_RA_TARGETS (default 8000).
 * BENCH_ONLY (optional, comma separated: throughput,enqueue,limits,wakeup,scaleout,conflicts,retryafter) runs a subset.
 * BENCH_CPU_PROF=<dir> writes the throughput workers' CPU profiles (`node --cpu-prof`) there;
 * `node dist/bench/profile.js <file.cpuprofile>` sums them up.
 * BENCH_DEBUG=1 prints the raw wake-up gaps and the limits bottleneck key's long spacings to stderr.
 *
 * Every scenario uses its own key prefix (UPSHIFT_PREFIX for its workers) and deletes its keys
 * when it ends; every process it starts is stopped before the next scenario.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { enqueueCampaign } from '../src/producer/index.js';
import { SANDBOX_KEYS, startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { campaignKeys, DEFAULTS, eventsChannel, readStatus, type CampaignStatus, type ConnectionRegistry } from '../src/shared/index.js';
import { nectedGraph } from '../scripts/lib/fixtures.js';
import { startPrivateRedis, type TestRedis } from '../scripts/lib/private-redis.js';

const BENCH_CREDENTIALS = ['BENCH_ALLOY_KEY', 'BENCH_NECTED_KEY', 'X'];
const benchRegistries = new Map<string, { registry: ConnectionRegistry; file?: string }>();

/** The sandbox at `url` registered for every credential variable the scenarios use (scripts/lib/connections.ts). */
function benchConnections(url: string): ConnectionRegistry {
  let entry = benchRegistries.get(url);
  if (!entry) benchRegistries.set(url, (entry = { registry: sandboxConnections(url, BENCH_CREDENTIALS) }));
  return entry.registry;
}

/** The same registry as a file, for the worker and CLI processes a scenario starts. */
function benchConnectionsFile(url: string): string {
  benchConnections(url);
  const entry = benchRegistries.get(url)!;
  return (entry.file ??= writeConnectionsFile(entry.registry));
}


const TARGETS = Number(process.env.BENCH_TARGETS ?? 100_000);
const ENQUEUE = Number(process.env.BENCH_ENQUEUE ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const LIMIT_TARGETS = Number(process.env.BENCH_LIMIT_TARGETS ?? 20_000);
const WAKE_TARGETS = Number(process.env.BENCH_WAKE_TARGETS ?? 500);
const SCALE_TARGETS = Number(process.env.BENCH_SCALE_TARGETS ?? 4000);
const CONFLICT_TARGETS = Number(process.env.BENCH_CONFLICT_TARGETS ?? 2000);
const RA_TARGETS = Number(process.env.BENCH_RA_TARGETS ?? 8000);
/** BENCH_CPU_PROF=<dir>: the throughput scenario's worker processes write V8 CPU profiles there. */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;
const profiled = (args: string[], name: string) =>
  CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`, `--cpu-prof-name=${name}.cpuprofile`, ...args] : args;
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
const CONCURRENCY = 100;

/** The bare addBulk baseline of the enqueue scenario is capped: 1M jobs take long and much Redis memory. */
const ENQUEUE_BASELINE = Math.min(ENQUEUE, 200_000);

const LIMIT_KEYS = 50;
const LIMIT_LATENCY_MS = 20;
const LIMIT_WORKERS = 3;
const LIMIT_WORKER_CONCURRENCY = 50;
/** Campaign j holds the keys k with k % LIMIT_CAMPAIGNS == j, limited to concurrency j + 1. */
const LIMIT_CAMPAIGNS = 5;

const WAKE_LATENCY_MS = 10;
const WAKE_WORKER_CONCURRENCY = 10;

const SCALE_LATENCY_MS = 50;
const SCALE_WORKER_CONCURRENCY = 50;
const SCALE_PROCESSES = [1, 2, 4] as const;

const CONFLICT_RATE = 0.3;
const CONFLICT_WORKER_CONCURRENCY = 50;

const RA_CONNECTIONS = 8;
const RA_WORKERS = 2;
const RA_WORKER_CONCURRENCY = 25;
const RA_LATENCY_MS = 5;
const RA_THROTTLE_RATE = 0.05;

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const bare = fileURLToPath(new URL('./bare-worker.js', import.meta.url));

const enabled = (name: string): boolean => ONLY === null || ONLY.has(name);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Nearest-rank percentile (p in 0..100). */
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** Peak resident set of a live child, from /proc (Linux); NaN elsewhere. */
function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

interface Child {
  proc: ChildProcess;
  lines: AsyncIterable<string>;
  readyLine: string;
}

/** Spawns a node script and resolves once a line containing `ready` is printed. */
async function spawnUntil(args: string[], env: Record<string, string>, ready: string): Promise<Child> {
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  proc.stdout!.on('data', (d: Buffer) => {
    queue.push(...d.toString().split('\n').filter(Boolean));
    wake?.();
  });
  async function* lines() {
    for (;;) {
      while (queue.length) yield queue.shift()!;
      await new Promise<void>((r) => (wake = r));
    }
  }
  const it = lines();
  // Read by hand: leaving a for-await loop early would close the generator.
  for (;;) {
    const { value, done } = await it.next();
    if (done) throw new Error(`${args.join(' ')} ended before printing "${ready}"`);
    if (value.includes(ready)) return { proc, lines: { [Symbol.asyncIterator]: () => it }, readyLine: value };
  }
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  await exited;
}

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
}

/**
 * `used_memory` once nothing is left to free in the background: Upshift's commit script UNLINKs
 * the staging dedup set, and until Redis's lazy-free thread has freed it, it still counts (and
 * would then leak out of the next measurement, making that one too small).
 */
async function usedMemory(redis: Redis): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const info = await redis.info('memory');
    const pending = Number(/lazyfree_pending_objects:(\d+)/.exec(info)?.[1] ?? 0);
    if (pending === 0 || Date.now() > deadline) return Number(/used_memory:(\d+)/.exec(info)![1]);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Deletes every key under `prefix:` with DEL (not UNLINK: a lazily freed key would still count
 * in `used_memory` when the next measurement starts). Returns how many keys were deleted.
 */
async function dropPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

/**
 * Subscribes to a prefix's campaign events before anything is enqueued (so no event is missed)
 * and records when each named campaign announced `completed`.
 */
async function watchCompletions(redisUrl: string, prefix: string, ids: readonly string[]) {
  const sub = new Redis(redisUrl);
  const at = new Map<string, number>();
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  sub.on('message', (_channel, message: string) => {
    const event = JSON.parse(message) as { id?: string; state?: string };
    if (event.state !== 'completed' || event.id === undefined || !ids.includes(event.id) || at.has(event.id)) return;
    at.set(event.id, Date.now());
    if (at.size === ids.length) resolveAll();
  });
  await sub.subscribe(eventsChannel(prefix));
  return {
    /** Completion time (Date.now()) per campaign; throws with `describe()` after `timeoutMs`. */
    async wait(timeoutMs: number, describe: () => Promise<string>): Promise<Map<string, number>> {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
      const result = await Promise.race([all.then(() => 'ok' as const), timedOut]);
      clearTimeout(timer);
      if (result === 'timeout') throw new Error(`campaigns not completed after ${timeoutMs} ms: ${await describe()}`);
      return at;
    },
    close: () => sub.disconnect(),
  };
}

function describeStatuses(statuses: (CampaignStatus | null)[]): string {
  return statuses
    .map((s) => (s ? `${s.id} ${s.state} total=${s.total} upgraded=${s.upgraded} failed=${s.failed} pending=${s.pending} active=${s.active}` : 'missing'))
    .join('; ');
}

/* ---- throughput ---------------------------------------------------------------------------- */

async function throughputScenario(redis: Redis, redisUrl: string, url: string, env: Record<string, string>) {
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
    const b = await spawnUntil(profiled([bare, url, 'bare', barePrefix, String(CONCURRENCY), String(TARGETS), SANDBOX_KEYS.alloy], `bare-${round}`), env, 'bare worker ready');
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
    const sub = new Redis(redisUrl);
    const completed = new Promise<void>((resolve) => sub.on('message', (_c, m: string) => (JSON.parse(m) as { id: string; ended?: boolean }).id === campaignId && (JSON.parse(m) as { ended?: boolean }).ended === true && resolve()));
    await sub.subscribe(eventsChannel(upPrefix));
    const w = await spawnUntil(profiled([cli, 'worker', '--concurrency', String(CONCURRENCY)], `upshift-${round}`), { ...env, UPSHIFT_PREFIX: upPrefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(url) }, 'upshift worker ready');
    const t0 = Date.now();
    await completed;
    upshiftMs.push(Date.now() - t0);
    upshiftRss.push(peakRssMb(w.proc.pid!));
    await stop(w.proc);
    sub.disconnect();
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

/* ---- enqueue --------------------------------------------------------------------------------- */

interface ChildRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  peakRssMb: number;
  rssHow: string;
}

/**
 * Runs a node script to its end and measures its wall time and peak RSS: through
 * `/usr/bin/time -v` ("Maximum resident set size") when present, else by polling
 * /proc/<pid>/status every 20 ms (the highest VmHWM / VmRSS seen).
 */
async function runMeasured(args: string[], env: Record<string, string>): Promise<ChildRun> {
  const useTime = existsSync('/usr/bin/time');
  const t0 = performance.now();
  const proc = useTime
    ? spawn('/usr/bin/time', ['-v', process.execPath, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let polledKb = 0;
  const poll = useTime
    ? undefined
    : setInterval(() => {
        try {
          const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
          for (const m of status.matchAll(/Vm(?:HWM|RSS):\s+(\d+) kB/g)) polledKb = Math.max(polledKb, Number(m[1]));
        } catch {
          // exited between two polls
        }
      }, 20);
  const [code] = (await once(proc, 'close')) as [number | null];
  const ms = performance.now() - t0;
  clearInterval(poll);
  let peakRssMb = polledKb / 1024;
  if (useTime) {
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
    peakRssMb = m ? Number(m[1]) / 1024 : Number.NaN;
  }
  return { code, stdout, stderr, ms, peakRssMb, rssHow: useTime ? '/usr/bin/time -v' : '/proc VmHWM poll, 20 ms' };
}

async function enqueueScenario(redis: Redis, redisUrl: string, url: string) {
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

/* ---- bare call calibration ------------------------------------------------------------------- */

/** Calls made before a calibration is timed (connection set-up, JIT). */
const CAL_WARMUP = 20;
const LIMIT_CAL_CALLS = 200;

/** Installs for `barePerCall`: users `cal-0` .. on `workflowId` (warm-up included). */
function calibrationInstalls(workflowId: string, calls: number) {
  return Array.from({ length: CAL_WARMUP + calls }, (_, i) => ({ workflowId, userId: `cal-${i}`, version: 1 }));
}

/**
 * The bare time of one platform call: `calls` sequential undici PUTs over one keep-alive
 * connection, after a warm-up, as Upshift's HTTP client makes them. Returns ms per call.
 */
async function barePerCall(baseUrl: string, workflowId: string, calls: number): Promise<number> {
  const agent = new Agent({ keepAliveTimeout: 30_000 });
  const call = async (userId: string): Promise<void> => {
    const res = await request(`${baseUrl}/workflows/${workflowId}/upgrade?userId=${encodeURIComponent(userId)}`, {
      dispatcher: agent,
      method: 'PUT',
      headers: { authorization: `bearer ${SANDBOX_KEYS.alloy}`, 'x-api-version': '2025-09' },
    });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`calibration call: HTTP ${res.statusCode}`);
  };
  try {
    for (let i = 0; i < CAL_WARMUP; i++) await call(`cal-${i}`);
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await call(`cal-${CAL_WARMUP + i}`);
    return (performance.now() - t0) / calls;
  } finally {
    await agent.close();
  }
}

/* ---- limits utilisation ---------------------------------------------------------------------- */

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

async function limitsScenario(redis: Redis, redisUrl: string, env: Record<string, string>) {
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
  let watch: Awaited<ReturnType<typeof watchCompletions>> | undefined;
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
      workers.push(
        await spawnUntil([cli, 'worker', '--concurrency', String(LIMIT_WORKER_CONCURRENCY)], { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) }, 'upshift worker ready'),
      );
    }
    watch = await watchCompletions(redisUrl, prefix, ids);

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

/* ---- wake-up latency -------------------------------------------------------------------------- */

async function wakeScenario(redis: Redis, redisUrl: string, env: Record<string, string>) {
  const prefix = 'bench-wake';
  const n = WAKE_TARGETS;
  const id = 'wake';
  const sandbox: Sandbox = await startSandbox({ latencyMs: WAKE_LATENCY_MS, record: true });
  let worker: Child | undefined;
  let watch: Awaited<ReturnType<typeof watchCompletions>> | undefined;
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
    worker = await spawnUntil(
      [cli, 'worker', '--concurrency', String(WAKE_WORKER_CONCURRENCY)],
      { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) },
      'upshift worker ready',
    );
    watch = await watchCompletions(redisUrl, prefix, [id]);
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

/* ---- scale-out ------------------------------------------------------------------------------- */

/**
 * Subscribes to a prefix's campaign events (before anything is enqueued) and resolves with the
 * time (Date.now()) of the message announcing that campaign `id` ended (`"ended":true`).
 */
async function watchEnd(redisUrl: string, prefix: string, id: string) {
  const sub = new Redis(redisUrl);
  let resolveEnd!: (at: number) => void;
  const ended = new Promise<number>((r) => (resolveEnd = r));
  sub.on('message', (_channel, message: string) => {
    const event = JSON.parse(message) as { id?: string; ended?: boolean };
    if (event.id === id && event.ended === true) resolveEnd(Date.now());
  });
  await sub.subscribe(eventsChannel(prefix));
  return {
    async wait(timeoutMs: number, describe: () => Promise<string>): Promise<number> {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
      const result = await Promise.race([ended, timedOut]);
      clearTimeout(timer);
      if (result === 'timeout') throw new Error(`campaign ${id} not ended after ${timeoutMs} ms: ${await describe()}`);
      return result;
    },
    close: () => sub.disconnect(),
  };
}

async function scaleoutScenario(redis: Redis, redisUrl: string, env: Record<string, string>) {
  const n = SCALE_TARGETS;
  const sandbox: Sandbox = await startSandbox({ latencyMs: SCALE_LATENCY_MS });
  const runs: {
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
  }[] = [];
  try {
    for (const processes of SCALE_PROCESSES) {
      const prefix = `bench-scale-${processes}`;
      const id = `scale-${processes}`;
      const workflowId = `wf-scale-${processes}`;
      const users = Array.from({ length: n }, (_, i) => `s${processes}-${i}`);
      const workers: Child[] = [];
      let watch: Awaited<ReturnType<typeof watchEnd>> | undefined;
      try {
        sandbox.reset();
        sandbox.load({ alloy: { workflows: { [workflowId]: { latestVersion: 2 } }, installs: users.map((userId) => ({ workflowId, userId, version: 1 })) } });
        await dropPrefix(redis, prefix);
        for (let i = 0; i < processes; i++) {
          workers.push(
            await spawnUntil([cli, 'worker', '--concurrency', String(SCALE_WORKER_CONCURRENCY)], { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) }, 'upshift worker ready'),
          );
        }
        watch = await watchEnd(redisUrl, prefix, id);
        const idealPerS = (processes * SCALE_WORKER_CONCURRENCY) / (SCALE_LATENCY_MS / 1000);
        const t0 = Date.now();
        await enqueueCampaign(
          { id, connection: { baseUrl: sandbox.url, credentialRef: 'BENCH_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId } },
          users.map((userId) => ({ userId })),
          { redis, prefix, connections: benchConnections(sandbox.url) },
        );
        const enqueueMs = Date.now() - t0;
        const endedAt = await watch.wait((n / idealPerS) * 1000 * 10 + 120_000, async () => describeStatuses([await readStatus(redis, prefix, id)]));
        const makespanMs = endedAt - t0;
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

/* ---- nected conflicts ------------------------------------------------------------------------ */

async function conflictsScenario(redis: Redis, redisUrl: string, env: Record<string, string>) {
  const prefix = 'bench-conflicts';
  const id = 'conflicts';
  const n = CONFLICT_TARGETS;
  const sandbox: Sandbox = await startSandbox({ latencyMs: 0, conflictRate: CONFLICT_RATE });
  let worker: Child | undefined;
  let watch: Awaited<ReturnType<typeof watchEnd>> | undefined;
  try {
    const ids = Array.from({ length: n }, (_, i) => `w-${i}`);
    sandbox.load({ nected: { workflows: ids.map((entityId) => ({ entityId, branch: 'main', graph: nectedGraph(entityId) })) } });
    await dropPrefix(redis, prefix);
    worker = await spawnUntil(
      [cli, 'worker', '--concurrency', String(CONFLICT_WORKER_CONCURRENCY)],
      { ...env, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(sandbox.url) },
      'upshift worker ready',
    );
    watch = await watchEnd(redisUrl, prefix, id);
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
    const endedAt = await watch.wait(n * 50 + 120_000, async () => describeStatuses([await readStatus(redis, prefix, id)]));
    const status = await readStatus(redis, prefix, id);
    const stats = sandbox.stats();
    const upgraded = status?.upgraded ?? 0;
    const patched = sandbox.state().nected!.workflows!.filter((w) => (w.graph.settings as { auditIO?: boolean } | undefined)?.auditIO === true).length;
    return {
      targets: n,
      conflictRate: CONFLICT_RATE,
      latencyMs: 0,
      workerConcurrency: CONFLICT_WORKER_CONCURRENCY,
      makespanMs: endedAt - t0,
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

/* ---- Retry-After: how late a call can follow a recorded 429 ------------------------------------ */

async function retryAfterScenario(redis: Redis, redisUrl: string, env: Record<string, string>) {
  const prefix = 'bench-ra';
  const n = RA_TARGETS;
  const perConnection = Math.ceil(n / RA_CONNECTIONS);
  const sandbox: Sandbox = await startSandbox({ latencyMs: RA_LATENCY_MS, throttleRate: RA_THROTTLE_RATE, retryAfterS: 1, seed: 7, record: true });
  const workers: Child[] = [];
  const sub = new Redis(redisUrl);
  const pauses: { conn: number; now: number; until: number; seenAt: number }[] = [];
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const watches: Awaited<ReturnType<typeof watchEnd>>[] = [];
  const keys: Record<string, string> = {};
  try {
    const users = (c: number) => Array.from({ length: perConnection }, (_, i) => `ra${c}-${i}`);
    sandbox.load({ alloy: { workflows: { 'wf-ra': { latestVersion: 2 } }, installs: Array.from({ length: RA_CONNECTIONS }, (_, c) => users(c)).flat().map((userId) => ({ workflowId: 'wf-ra', userId, version: 1 })) } });
    for (let c = 0; c < RA_CONNECTIONS; c++) keys[`BENCH_RA_KEY_${c}`] = SANDBOX_KEYS.alloy;
    const raConnections = sandboxConnections(sandbox.url, Object.keys(keys));
    await dropPrefix(redis, prefix);
    sub.on('message', (_channel, message: string) => {
      const e = JSON.parse(message) as { pause?: string; until: number; now: number };
      const conn = e.pause === undefined ? undefined : /BENCH_RA_KEY_(\d+)$/.exec(e.pause)?.[1];
      if (conn !== undefined) pauses.push({ conn: Number(conn), now: e.now, until: e.until, seenAt: Date.now() });
    });
    await sub.subscribe(eventsChannel(prefix));
    for (let c = 0; c < RA_CONNECTIONS; c++) {
      await enqueueCampaign(
        { id: `ra-${c}`, connection: { baseUrl: sandbox.url, credentialRef: `BENCH_RA_KEY_${c}` }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-ra' } },
        users(c).map((userId) => ({ userId })),
        { redis, prefix, connections: raConnections },
      );
      watches.push(await watchEnd(redisUrl, prefix, `ra-${c}`));
    }
    loopDelay.enable();
    const t0 = Date.now();
    for (let i = 0; i < RA_WORKERS; i++) {
      workers.push(await spawnUntil([cli, 'worker', '--concurrency', String(RA_WORKER_CONCURRENCY)], { ...env, ...keys, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: writeConnectionsFile(raConnections) }, 'upshift worker ready'));
    }
    let endedAt = t0;
    for (const [c, w] of watches.entries()) endedAt = Math.max(endedAt, await w.wait(n * 20 + 120_000, async () => describeStatuses([await readStatus(redis, prefix, `ra-${c}`)])));
    loopDelay.disable();
    const byConnection = new Map<number, number[]>();
    for (const r of sandbox.received!) {
      const c = /userId=ra(\d+)-/.exec(r.path)?.[1];
      if (c !== undefined) (byConnection.get(Number(c)) ?? byConnection.set(Number(c), []).get(Number(c))!).push(r.at);
    }
    const afterRecorded: number[] = [];
    for (const p of pauses) for (const t of byConnection.get(p.conn) ?? []) if (t > p.now && t < p.until) afterRecorded.push(t - p.now);
    const statuses = await Promise.all(watches.map((_, c) => readStatus(redis, prefix, `ra-${c}`)));
    const gateMs = DEFAULTS.pauseGateMs;
    return {
      targets: perConnection * RA_CONNECTIONS,
      connections: RA_CONNECTIONS,
      workers: RA_WORKERS,
      workerConcurrency: RA_WORKER_CONCURRENCY,
      latencyMs: RA_LATENCY_MS,
      makespanMs: endedAt - t0,
      pauses: pauses.length,
      callsInsidePauses: afterRecorded.length,
      latestAfterRecordedMs: afterRecorded.length ? Math.max(...afterRecorded) : 0,
      p99AfterRecordedMs: afterRecorded.length ? percentile(afterRecorded, 99) : 0,
      gateMs,
      beyondGatePlus50Ms: afterRecorded.filter((x) => x > gateMs + 50).length,
      sandboxLoopDelayMaxMs: Math.round(loopDelay.max / 1e6),
      upgraded: statuses.reduce((a, s) => a + (s?.upgraded ?? 0), 0),
      failed: statuses.reduce((a, s) => a + (s?.failed ?? 0), 0),
    };
  } finally {
    loopDelay.disable();
    for (const w of watches) w.close();
    sub.disconnect();
    for (const w of workers) await stop(w.proc);
    await sandbox.close();
    await dropPrefix(redis, prefix);
  }
}

/* ---- main ------------------------------------------------------------------------------------- */

async function main(): Promise<void> {
  const redisInfo: TestRedis = process.env.REDIS_URL
    ? { url: process.env.REDIS_URL, how: 'REDIS_URL', stop: async () => undefined }
    : await startPrivateRedis();
  const redis = new Redis(redisInfo.url, { maxRetriesPerRequest: null });
  const sandbox = await spawnUntil([cli, 'sandbox', '--port', '0'], {}, 'listening on');
  const results: Record<string, unknown> = {};
  try {
    const url = /listening on (\S+)/.exec(sandbox.readyLine)![1]!;
    const env = { REDIS_URL: redisInfo.url, BENCH_ALLOY_KEY: SANDBOX_KEYS.alloy, BENCH_NECTED_KEY: SANDBOX_KEYS.nected, LOG_LEVEL: 'warn' };
    if (enabled('throughput')) results.throughput = await throughputScenario(redis, redisInfo.url, url, env);
    if (enabled('enqueue')) results.enqueue = await enqueueScenario(redis, redisInfo.url, url);
    await stop(sandbox.proc); // the next scenarios start their own sandboxes, with their options
    if (enabled('limits')) results.limits = await limitsScenario(redis, redisInfo.url, env);
    if (enabled('wakeup')) results.wakeup = await wakeScenario(redis, redisInfo.url, env);
    if (enabled('scaleout')) results.scaleout = await scaleoutScenario(redis, redisInfo.url, env);
    if (enabled('conflicts')) results.conflicts = await conflictsScenario(redis, redisInfo.url, env);
    if (enabled('retryafter')) results.retryafter = await retryAfterScenario(redis, redisInfo.url, env);
  } finally {
    await stop(sandbox.proc);
    redis.disconnect();
    await redisInfo.stop();
  }

  const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const out = { machine, redis: redisInfo.how, date: new Date().toISOString(), ...results };
  writeFileSync(new URL('../../bench/results.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
  console.log(`machine: ${machine}`);
  console.log('| scenario | Upshift | baseline | ratio |');
  console.log('|---|---|---|---|');
  const t = results.throughput as Awaited<ReturnType<typeof throughputScenario>> | undefined;
  if (t) {
    console.log(`| throughput, ${t.targets} alloy targets, concurrency ${t.concurrency} (targets/s, medians; ratio: median of the ${t.rounds} rounds' ratios ${t.roundRatios.join(' ')}) | ${t.upshiftTargetsPerS} | ${t.bareTargetsPerS} (bare BullMQ + undici) | ${t.ratio} |`);
    console.log(`| worker peak RSS (MB) | ${t.upshiftPeakRssMb} | ${t.barePeakRssMb} | |`);
    console.log(`| Redis bytes per finished target: deployment slot (marker) / campaign slot (record) | ${t.finishedBytesDeploymentSlot} / ${t.finishedBytesCampaignSlot} | 0 (removeOnComplete) | |`);
  }
  const e = results.enqueue as Awaited<ReturnType<typeof enqueueScenario>> | undefined;
  if (e) {
    const capped = e.baselineJobs < e.targets ? `, ${e.baselineJobs} jobs` : '';
    console.log(
      `| enqueue ${e.targets} targets from NDJSON, \`upshift enqueue\` child process incl. start-up (targets/s; goal >= 100000) | ${e.upshiftTargetsPerS} | ${e.bareTargetsPerS} (addBulk x 1000 in-process${capped}) | ${e.ratio} |`,
    );
    console.log(`| Redis bytes per pending target (goal <= 150) | ${e.upshiftRedisBytesPerTarget} | ${e.bareRedisBytesPerTarget} | |`);
    console.log(`| producer peak RSS, enqueue ${e.targets} (MB; goal < 200) | ${e.producerPeakRssMb} | n/a (in-process) | |`);
  }
  const l = results.limits as Awaited<ReturnType<typeof limitsScenario>> | undefined;
  if (l) {
    console.log(
      `| limits utilisation, ${l.targets} targets on ${l.keys} Zipf keys, limits 1-5, ${l.workers} workers x ${l.workerConcurrency}, ${l.latencyMs} ms (makespan ms; goal ratio <= 1.10) | ${l.makespanMs} | ${l.idealMs} (ideal) | ${l.ratio} |`,
    );
    console.log(`| limits held (sandbox max in-flight per key <= limit) | ${l.limitsHeld ? 'yes' : 'NO'} | | |`);
  }
  const w = results.wakeup as Awaited<ReturnType<typeof wakeScenario>> | undefined;
  if (w) {
    console.log(
      `| wake-up gap, ${w.targets} targets on 1 key at concurrency 1, ${w.latencyMs} ms (median / p99 ms; goal median <= 5) | ${w.gapMedianMs} / ${w.gapP99Ms} | 0 (bare call ${w.barePerCallMs} ms) | |`,
    );
    console.log(`| wake-up makespan, ${w.targets} targets (ms) | ${w.makespanMs} | ${w.bareMakespanMs} (${w.targets} sequential bare calls) | ${w.ratio} |`);
  }
  const so = results.scaleout as Awaited<ReturnType<typeof scaleoutScenario>> | undefined;
  if (so) {
    for (const r of so.runs) {
      console.log(
        `| scale-out, ${so.targets} alloy targets, ${r.processes} worker process${r.processes > 1 ? 'es' : ''} x ${r.concurrency}, ${so.latencyMs} ms (targets/s) | ${r.targetsPerS} | ${r.idealTargetsPerS} (ideal ${r.processes} x ${r.concurrency} / ${so.latencyMs} ms) | ${r.ratio} |`,
      );
    }
  }
  const c = results.conflicts as Awaited<ReturnType<typeof conflictsScenario>> | undefined;
  if (c) {
    console.log(
      `| nected conflicts, ${c.targets} targets, conflictRate ${c.conflictRate}, 1 worker x ${c.workerConcurrency} (calls per upgraded target) | ${c.callsPerUpgraded} | 2 (no conflicts); ${c.expectedCallsPerTarget} expected at ${c.conflictRate * 100}% | ${c.callsPerUpgraded === null ? '' : round2(c.callsPerUpgraded / c.expectedCallsPerTarget)} |`,
    );
    console.log(`| nected conflicts counted (status hash / sandbox; upgraded ${c.upgraded}, failed ${c.failed}) | ${c.statusConflicts} | ${c.sandboxConflicts} (sandbox); ${c.expectedConflicts} expected | |`);
  }
  const ra = results.retryafter as Awaited<ReturnType<typeof retryAfterScenario>> | undefined;
  if (ra) {
    console.log(
      `| Retry-After, ${ra.targets} alloy targets on ${ra.connections} connections, 5% 429 (1 s), ${ra.workers} workers x ${ra.workerConcurrency}: latest / p99 arrival inside a pause after the 429 was recorded (ms; goal latest <= pauseGateMs + 50) | ${ra.latestAfterRecordedMs} / ${ra.p99AfterRecordedMs} | ${ra.gateMs} (pauseGateMs) | ${ra.beyondGatePlus50Ms} beyond +50 ms of ${ra.callsInsidePauses} calls in ${ra.pauses} pauses; sandbox loop delay max ${ra.sandboxLoopDelayMaxMs} ms |`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
