/**
 * What the bench scenarios (bench/scenarios/*.ts) share: child processes, Redis bookkeeping, the
 * sandbox registry, one campaign watcher, the bare-call calibration and the statistics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { SANDBOX_KEYS } from '../src/sandbox/index.js';
import { eventsChannel, type CampaignStatus, type ConnectionRegistry } from '../src/shared/index.js';
import { sandboxConnections, writeConnectionsFile } from '../scripts/lib/connections.js';

/** What every scenario is handed by the driver (bench/run.ts). */
export interface BenchContext {
  redis: Redis;
  redisUrl: string;
  /** Worker and CLI environment: REDIS_URL, the sandbox credentials, LOG_LEVEL. */
  env: Record<string, string>;
  /** The shared `upshift sandbox` child's URL, for scenarios with `sharedSandbox` (the others start their own). */
  sandboxUrl: string;
}

export interface Scenario<R = unknown> {
  /** Its BENCH_ONLY name and its key in bench/results.json. */
  name: string;
  /** Runs against the shared sandbox child, which the driver stops before the other scenarios. */
  sharedSandbox?: boolean;
  run(ctx: BenchContext): Promise<R>;
  /** Its rows of the printed table (the one BENCHMARKS.md copies). */
  rows(result: R): string[];
}

export const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
export const bare = fileURLToPath(new URL('./bare-worker.js', import.meta.url));

/* ---- the sandbox as a registered connection ----------------------------------------------------- */

const BENCH_CREDENTIALS = ['BENCH_ALLOY_KEY', 'BENCH_NECTED_KEY', 'X'];
const benchRegistries = new Map<string, { registry: ConnectionRegistry; file?: string }>();

/** The sandbox at `url` registered for every credential variable the scenarios use (scripts/lib/connections.ts). */
export function benchConnections(url: string): ConnectionRegistry {
  let entry = benchRegistries.get(url);
  if (!entry) benchRegistries.set(url, (entry = { registry: sandboxConnections(url, BENCH_CREDENTIALS) }));
  return entry.registry;
}

/** The same registry as a file, for the worker and CLI processes a scenario starts. */
export function benchConnectionsFile(url: string): string {
  benchConnections(url);
  const entry = benchRegistries.get(url)!;
  return (entry.file ??= writeConnectionsFile(entry.registry));
}

/* ---- statistics -------------------------------------------------------------------------------- */

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const round2 = (x: number): number => Math.round(x * 100) / 100;

/* ---- child processes --------------------------------------------------------------------------- */

/** Peak resident set of a live child, from /proc (Linux); NaN elsewhere. */
export function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system, ms) a live process has used, from /proc (Linux, 100 ticks/s); NaN elsewhere. */
export function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

export interface Child {
  proc: ChildProcess;
  lines: AsyncIterable<string>;
  readyLine: string;
}

/** Spawns a node script and resolves once a line containing `ready` is printed. */
export async function spawnUntil(args: string[], env: Record<string, string>, ready: string): Promise<Child> {
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  proc.stdout!.on('data', (d: Buffer) => {
    queue.push(...d.toString().split('\n').filter(Boolean));
    wake?.();
  });
  // A child that dies before it is ready ends the lines, so the wait below throws instead of hanging.
  proc.stdout!.once('close', () => {
    ended = true;
    wake?.();
  });
  async function* lines() {
    for (;;) {
      while (queue.length) yield queue.shift()!;
      if (ended) return;
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

/** An `upshift worker` child at `concurrency`, once it says it is ready; `nodeFlags` go to node itself. */
export function spawnWorker(concurrency: number, env: Record<string, string>, nodeFlags: string[] = []): Promise<Child> {
  return spawnUntil([...nodeFlags, cli, 'worker', '--concurrency', String(concurrency)], env, 'upshift worker ready');
}

export async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  await exited;
}

export interface ChildRun {
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
export async function runMeasured(args: string[], env: Record<string, string>): Promise<ChildRun> {
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

export async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
}

/* ---- Redis ------------------------------------------------------------------------------------- */

/**
 * `used_memory` once nothing is left to free in the background: Upshift's commit script UNLINKs
 * the staging dedup set, and until Redis's lazy-free thread has freed it, it still counts (and
 * would then leak out of the next measurement, making that one too small).
 */
export async function usedMemory(redis: Redis): Promise<number> {
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
export async function dropPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

export type CampaignWatch = Awaited<ReturnType<typeof watchCampaigns>>;

/**
 * Subscribes to a prefix's campaign events before anything is enqueued (so no event is missed)
 * and records when (Date.now()) each named campaign announced `until`: its `completed` state, or
 * its end (`"ended":true`, which a cancelled or failed campaign announces too).
 */
export async function watchCampaigns(redisUrl: string, prefix: string, ids: readonly string[], until: 'completed' | 'ended') {
  const sub = new Redis(redisUrl);
  const at = new Map<string, number>();
  let resolveAll!: () => void;
  const all = new Promise<void>((r) => (resolveAll = r));
  sub.on('message', (_channel, message: string) => {
    const event = JSON.parse(message) as { id?: string; state?: string; ended?: boolean };
    const reached = until === 'completed' ? event.state === 'completed' : event.ended === true;
    if (!reached || event.id === undefined || !ids.includes(event.id) || at.has(event.id)) return;
    at.set(event.id, Date.now());
    if (at.size === ids.length) resolveAll();
  });
  await sub.subscribe(eventsChannel(prefix));
  return {
    /**
     * Resolves with the time per campaign once all have reached `until`; with a `timeoutMs`,
     * throws with `describe()` after it.
     */
    async wait(timeoutMs?: number, describe?: () => Promise<string>): Promise<Map<string, number>> {
      if (timeoutMs === undefined) {
        await all;
        return at;
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
      const result = await Promise.race([all.then(() => 'ok' as const), timedOut]);
      clearTimeout(timer);
      if (result === 'timeout') throw new Error(`campaigns ${ids.join(', ')} not ${until} after ${timeoutMs} ms: ${(await describe?.()) ?? ''}`);
      return at;
    },
    close: () => sub.disconnect(),
  };
}

export function describeStatuses(statuses: (CampaignStatus | null)[]): string {
  return statuses
    .map((s) => (s ? `${s.id} ${s.state} total=${s.total} upgraded=${s.upgraded} failed=${s.failed} pending=${s.pending} active=${s.active}` : 'missing'))
    .join('; ');
}

/* ---- bare call calibration --------------------------------------------------------------------- */

/** Calls made before a calibration is timed (connection set-up, JIT). */
const CAL_WARMUP = 20;

/** Installs for `barePerCall`: users `cal-0` .. on `workflowId` (warm-up included). */
export function calibrationInstalls(workflowId: string, calls: number) {
  return Array.from({ length: CAL_WARMUP + calls }, (_, i) => ({ workflowId, userId: `cal-${i}`, version: 1 }));
}

/**
 * The bare time of one platform call: `calls` sequential undici PUTs over one keep-alive
 * connection, after a warm-up, as Upshift's HTTP client makes them. Returns ms per call.
 */
export async function barePerCall(baseUrl: string, workflowId: string, calls: number): Promise<number> {
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
