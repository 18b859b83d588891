/**
 * retryafter: alloy targets over 8 connections, 5% answered 429 with Retry-After: 1, 2 worker
 * processes x 25: the latest arrival at the sandbox inside a pause, counted from when the 429
 * was recorded in Redis, against the send gate's bound (pauseGateMs). The chaos test checks the
 * same with a margin for a loaded machine; this is the figure on a quiet one, where the
 * sandbox's view is not held up.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { enqueueCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS, startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { DEFAULTS, eventsChannel, readStatus } from '../../src/shared/index.js';
import { sandboxConnections, writeConnectionsFile } from '../../scripts/lib/connections.js';
import { describeStatuses, dropPrefix, percentile, spawnWorker, stop, watchCampaigns, type BenchContext, type CampaignWatch, type Child, type Scenario } from '../helpers.js';

const RA_TARGETS = Number(process.env.BENCH_RA_TARGETS ?? 8000);
const RA_CONNECTIONS = 8;
const RA_WORKERS = 2;
const RA_WORKER_CONCURRENCY = 25;
const RA_LATENCY_MS = 5;
const RA_THROTTLE_RATE = 0.05;

async function run({ redis, redisUrl, env }: BenchContext) {
  const prefix = 'bench-ra';
  const n = RA_TARGETS;
  const perConnection = Math.ceil(n / RA_CONNECTIONS);
  const sandbox: Sandbox = await startSandbox({ latencyMs: RA_LATENCY_MS, throttleRate: RA_THROTTLE_RATE, retryAfterS: 1, seed: 7, record: true });
  const workers: Child[] = [];
  const sub = new Redis(redisUrl);
  const pauses: { conn: number; now: number; until: number; seenAt: number }[] = [];
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  const watches: CampaignWatch[] = [];
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
      watches.push(await watchCampaigns(redisUrl, prefix, [`ra-${c}`], 'ended'));
    }
    loopDelay.enable();
    const t0 = Date.now();
    for (let i = 0; i < RA_WORKERS; i++) {
      workers.push(await spawnWorker(RA_WORKER_CONCURRENCY, { ...env, ...keys, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: writeConnectionsFile(raConnections) }));
    }
    let endedAt = t0;
    for (const [c, w] of watches.entries()) {
      const ended = await w.wait(n * 20 + 120_000, async () => describeStatuses([await readStatus(redis, prefix, `ra-${c}`)]));
      endedAt = Math.max(endedAt, ended.get(`ra-${c}`)!);
    }
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

export const retryafter: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'retryafter',
  run,
  rows: (ra) => [
    `| Retry-After, ${ra.targets} alloy targets on ${ra.connections} connections, 5% 429 (1 s), ${ra.workers} workers x ${ra.workerConcurrency}: latest / p99 arrival inside a pause after the 429 was recorded (ms; goal latest <= pauseGateMs + 50) | ${ra.latestAfterRecordedMs} / ${ra.p99AfterRecordedMs} | ${ra.gateMs} (pauseGateMs) | ${ra.beyondGatePlus50Ms} beyond +50 ms of ${ra.callsInsidePauses} calls in ${ra.pauses} pauses; sandbox loop delay max ${ra.sandboxLoopDelayMaxMs} ms |`,
  ],
};
