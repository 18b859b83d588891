import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS, startSandbox, type Sandbox, type SandboxFixtures } from '../../src/sandbox/index.js';
import { DEFAULTS, eventsChannel, parseConnections, streamReport, type CampaignStatus, type ConnectionRegistry } from '../../src/shared/index.js';
import { nectedGraph, sendLog, spawnWorker, type WorkerProcess } from '../support/fleet.js';
import { deletePrefix, newRedis, redisUrl, testPrefix, waitForCompletion } from '../support/harness.js';
import { connectionsFile, testConnectionsWith } from '../support/connections.js';
import { recordFigures } from './figures.js';

/**
 * The chaos run: 20,000 targets of all five operations over 40 campaigns (40 connections, each
 * its own credential name), limits on, 4 worker processes of which one is SIGKILLed and replaced
 * every 2 s, 7 times, while the sandbox injects 10% 5xx, 5% 429 with Retry-After, 2% connection
 * resets, 2% answers slower than the call timeout and 10% Nected checksum conflicts.
 *
 * It must pass on a loaded two-core machine (CI runs it beside other work): every bound it
 * checks holds by design whatever the load, and where the sandbox's own view is held up by that
 * load (it shares this process's event loop), the check allows for it with a measured margin.
 */
const CAMPAIGNS = 40;
const PER_CAMPAIGN = 500;
const TENANTS = 10;
const TENANT_LIMIT = 3;
const KILL_EVERY_MS = 2000;
/** Counted, not timed: on a loaded machine a replacement takes seconds to start. */
const KILLS = 7;
const LATENCY_MS = 5;
const TIMEOUT_MS = 1000;
/**
 * The Retry-After guarantee: no call starts later than this after the 429 was recorded in Redis
 * (the worker's send gate, src/worker/pauses.ts).
 */
const GATE_MS = DEFAULTS.pauseGateMs;
/**
 * A start is the worker's `Date.now()` right before the write; the gate's check comes a few
 * microseconds earlier, in the same synchronous step. The OS (a loaded machine) or V8's garbage
 * collector can suspend the worker between the two: measured at most 8 ms (RELIABILITY.md).
 * The guarantee is GATE_MS + WRITE_SLACK_MS.
 */
const WRITE_SLACK_MS = 50;
/**
 * The platform's view, the sandbox's arrivals, lags the starts: the sandbox stamps a call when
 * this process's event loop gets to it (two turns for a new connection: accept, then read), and
 * a pause when the same loop gets to its event (one turn). On a loaded machine that difference
 * reached 324 ms beyond GATE_MS (RELIABILITY.md); allowed: at least 300 ms, and two of the
 * loop's worst delays when they were longer.
 */
const SANDBOX_MARGIN_MIN_MS = 300;
/** 90-129 s on a shared two-core machine, up to 181 s beside a CPU hog (RELIABILITY.md); the bound is for a worse one. */
const LOADED_TIMEOUT_MS = 600_000;

type Op = 'alloy' | 'exec' | 'def' | 'tallyfy' | 'nected';
const OPS: Op[] = ['alloy', 'exec', 'def', 'tallyfy', 'nected'];
const opOf = (c: number): Op => OPS[c % OPS.length]!;
/** Every target id carries its campaign: `.c<n>.`, so a request names its connection. */
const idOf = (op: Op, c: number, i: number): string =>
  op === 'alloy' ? `t${i % TENANTS}.c${c}.${i}` : `${op[0]}.c${c}.${i}`;
const credentialRef = (c: number) => `UPSHIFT_CHAOS_KEY_${c}`;
const keyFor: Record<Op, string> = {
  alloy: SANDBOX_KEYS.alloy,
  exec: SANDBOX_KEYS.conductor,
  def: SANDBOX_KEYS.conductor,
  tallyfy: SANDBOX_KEYS.tallyfy,
  nected: SANDBOX_KEYS.nected,
};

function fixtures(): SandboxFixtures {
  const f: Required<Pick<SandboxFixtures, 'alloy' | 'conductor' | 'tallyfy' | 'nected'>> = {
    alloy: { workflows: { 'wf-1': { latestVersion: 2 } }, installs: [] },
    conductor: { definitions: [], executions: [] },
    tallyfy: { runs: [] },
    nected: { workflows: [] },
  };
  for (let c = 0; c < CAMPAIGNS; c++) {
    for (let i = 0; i < PER_CAMPAIGN; i++) {
      const id = idOf(opOf(c), c, i);
      switch (opOf(c)) {
        case 'alloy':
          f.alloy.installs!.push({ workflowId: 'wf-1', userId: id, version: 1 });
          break;
        case 'exec':
          f.conductor.executions!.push({ workflowId: id, workflowName: 'flow', workflowVersion: 1, status: 'RUNNING' });
          break;
        case 'def':
          f.conductor.definitions!.push({ name: id, version: 1, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' });
          break;
        case 'tallyfy':
          f.tallyfy.runs!.push({ orgId: 'org', id, name: 'old' });
          break;
        case 'nected':
          f.nected.workflows!.push({ entityId: id, branch: 'main', graph: nectedGraph(id) });
          break;
      }
    }
  }
  f.conductor.definitions!.push(...[1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })));
  return f;
}

function spec(c: number, baseUrl: string) {
  const op = opOf(c);
  const operation = {
    alloy: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
    exec: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 },
    def: { type: 'conductor.updateDefinition', ownerEmail: 'ops@acme.test', patch: [{ op: 'replace', path: '/timeoutSeconds', value: 3600 }] },
    tallyfy: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'new' } },
    nected: { type: 'nected.updateWorkflow', branch: 'main', conflictRetries: 20, patch: [{ op: 'replace', path: '/settings/auditIO', value: true }] },
  }[op];
  return {
    id: `chaos-${c}`,
    connection: { baseUrl, credentialRef: credentialRef(c), timeoutMs: TIMEOUT_MS },
    operation,
    retry: { attempts: 8, backoffMs: 50 },
    limits: op === 'alloy' ? [{ key: '${target.tenant}', concurrency: TENANT_LIMIT }] : [],
  };
}

function targets(c: number): Record<string, string>[] {
  const op = opOf(c);
  return Array.from({ length: PER_CAMPAIGN }, (_, i) => {
    const id = idOf(op, c, i);
    const byOp: Record<Op, Record<string, string>> = {
      alloy: { userId: id, tenant: `t${i % TENANTS}` },
      exec: { workflowId: id },
      def: { name: id },
      tallyfy: { runId: id },
      nected: { entityId: id },
    };
    return byOp[op];
  });
}

/** Whether the sandbox holds the target in its upgraded state. */
function isCurrent(state: SandboxFixtures, op: Op, id: string): boolean {
  switch (op) {
    case 'alloy':
      return state.alloy!.installs!.find((x) => x.userId === id)!.version === 2;
    case 'exec':
      return state.conductor!.executions!.find((x) => x.workflowId === id)!.workflowVersion === 2;
    case 'def':
      return state.conductor!.definitions!.find((x) => x.name === id)!.timeoutSeconds === 3600;
    case 'tallyfy':
      return state.tallyfy!.runs!.find((x) => x.id === id)!.name === 'new';
    case 'nected':
      return (state.nected!.workflows!.find((x) => x.entityId === id)!.graph.settings as { auditIO: boolean }).auditIO === true;
  }
}

describe('chaos: kills and platform faults under load', () => {
  let redis: Redis;
  let prefix: string;
  let sandbox: Sandbox;
  const procs: WorkerProcess[] = [];
  /** Every platform request the workers wrote, with the time (undici's channel, in each worker). */
  const sends = sendLog();
  const env: Record<string, string> = {};
  /** The sandbox registered for every campaign's own credential variable (40 connections). */
  let connections: ConnectionRegistry;

  beforeAll(async () => {
    redis = newRedis();
    prefix = testPrefix();
    sandbox = await startSandbox({
      record: true,
      latencyMs: LATENCY_MS,
      failRate: 0.1,
      throttleRate: 0.05,
      retryAfterS: 1,
      resetRate: 0.02,
      slowRate: 0.02,
      slowMs: 3 * TIMEOUT_MS,
      conflictRate: 0.1,
      seed: 2026,
      limitKeyPattern: '^alloy:[^:]+:(t\\d+)\\.',
    });
    sandbox.load(fixtures());
    for (let c = 0; c < CAMPAIGNS; c++) env[credentialRef(c)] = keyFor[opOf(c)];
    // The tenant limit is the operator's, declared on every connection: a campaign's own limit
    // keys are scoped to its connection, so only a registry key is shared across the 40.
    const plain = testConnectionsWith([sandbox.url], Array.from({ length: CAMPAIGNS }, (_, c) => credentialRef(c)));
    connections = parseConnections({
      connections: Object.fromEntries(
        Object.entries(plain.connections).map(([name, entry]) => {
          const c = Array.from({ length: CAMPAIGNS }, (_, i) => i).find((i) => credentialRef(i) === name);
          return [name, c !== undefined && opOf(c) === 'alloy' ? { ...entry, limits: [{ key: '${target.tenant}', concurrency: TENANT_LIMIT }] } : entry];
        }),
      ),
    });
    Object.assign(env, { REDIS_URL: redisUrl(), UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: connectionsFile(connections) }, sends.env);
  });
  afterAll(async () => {
    for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await sandbox.close();
    await deletePrefix(redis, prefix);
    redis.disconnect();
    sends.remove();
  });

  const worker = () => spawnWorker(env, ['--concurrency', '25', '--lease-ms', '2000', '--lock-duration-ms', '1000', '--stalled-interval-ms', '500']);

  it('loses nothing, doubles nothing beyond the kills, holds every limit and every Retry-After', async () => {
    const pauseEvents: { pause: string; until: number; now: number; seenAt: number }[] = [];
    const sub = newRedis();
    sub.on('message', (_c, m: string) => {
      const e = JSON.parse(m) as { pause?: string; until: number; now: number };
      // `seenAt`: when this process (whose event loop also runs the sandbox) got to the event.
      if (e.pause !== undefined) pauseEvents.push({ ...(e as { pause: string; until: number; now: number }), seenAt: Date.now() });
    });
    await sub.subscribe(eventsChannel(prefix));
    // The sandbox time-stamps a call when its event loop gets to it; while that loop is held up
    // (it shares two cores with four workers and Redis), calls sent earlier are stamped late.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    // Every campaign is enqueued before the workers start: enqueueing is CPU work in this process,
    // which also runs the sandbox, whose view of when calls arrive it would hold up.
    for (let c = 0; c < CAMPAIGNS; c++) await enqueueCampaign(spec(c, sandbox.url), targets(c), { redis, prefix, connections });
    const started = Date.now();
    let live: WorkerProcess[] = [];
    for (let i = 0; i < 4; i++) live.push(await worker());
    procs.push(...live);

    let kills = 0;
    while (kills < KILLS) {
      await new Promise((resolve) => setTimeout(resolve, KILL_EVERY_MS));
      const victim = live.shift()!;
      victim.proc.kill('SIGKILL');
      await victim.exited;
      kills++;
      const fresh = await worker();
      procs.push(fresh);
      live.push(fresh);
    }
    const statuses: CampaignStatus[] = [];
    for (let c = 0; c < CAMPAIGNS; c++) statuses.push(await waitForCompletion(prefix, `chaos-${c}`, LOADED_TIMEOUT_MS - 60_000));
    const elapsedMs = Date.now() - started;
    loopDelay.disable();
    const sandboxLoopDelayMaxMs = Math.round(loopDelay.max / 1e6);
    sub.disconnect();

    // Every target has an outcome; counters equal the per-target report.
    const state = sandbox.state();
    let failed = 0;
    let mismatched = 0;
    /** Plain writes (Alloy, Tallyfy) of targets whose last error was a call timeout. */
    const lastErrorTimeout = new Set<string>();
    for (let c = 0; c < CAMPAIGNS; c++) {
      const s = statuses[c]!;
      expect(s).toMatchObject({ state: 'completed', total: PER_CAMPAIGN, pending: 0, active: 0 });
      const counts: Record<string, number> = { upgraded: 0, skipped: 0, failed: 0 };
      for await (const line of streamReport(redis, prefix, `chaos-${c}`)) {
        counts[line.outcome] = (counts[line.outcome] ?? 0) + 1;
        // What the report says matches what the platform holds: an upgraded or skipped target
        // is current. A failed one may or may not be (a slow answer can land after the timeout).
        if (line.outcome !== 'failed' && !isCurrent(state, opOf(c), line.target)) mismatched++;
        if (line.outcome === 'failed') failed++;
        if (line.error?.startsWith('TIMEOUT') && (opOf(c) === 'alloy' || opOf(c) === 'tallyfy')) {
          lastErrorTimeout.add(opOf(c) === 'alloy' ? `alloy:wf-1:${line.target}` : `tallyfy:org:${line.target}`);
        }
      }
      expect(counts).toEqual({ upgraded: s.upgraded, skipped: s.skipped, failed: s.failed });
    }
    expect(mismatched).toBe(0);

    // No limit ever exceeded.
    const maxByKey = sandbox.stats().maxInFlightByKey;
    expect(Object.keys(maxByKey)).toHaveLength(TENANTS);
    for (const n of Object.values(maxByKey)) expect(n).toBeLessThanOrEqual(TENANT_LIMIT);

    // No call starts later than GATE_MS + WRITE_SLACK_MS after a Retry-After pause was recorded,
    // until it ends. A pause runs from the throttle script's Redis TIME (`now` in its event; Redis
    // runs on this machine, so on this clock) to the time named. When a call started is what the workers saw
    // as they wrote it (`sends`: undici's own diagnostics channel, not Upshift's code); a call
    // started before the pause was recorded, or within GATE_MS of it, may still arrive inside.
    // A client that ignored Retry-After would call all through the rest of each 1 s pause.
    const received = sandbox.received!;
    const connectionOf = (r: { path: string; body: string }) => /\.c(\d+)\./.exec(decodeURIComponent(r.path) + r.body)?.[1];
    const pausesOf = new Map<string, typeof pauseEvents>();
    for (const p of pauseEvents) {
      const c = /UPSHIFT_CHAOS_KEY_(\d+)$/.exec(p.pause)![1]!;
      (pausesOf.get(c) ?? pausesOf.set(c, []).get(c)!).push(p);
    }
    const written = sends.read();
    let callsStartedLate = 0;
    let callsStartedInsidePauses = 0;
    let latestStartAfterRecordedMs = 0;
    for (const w of written) {
      for (const p of pausesOf.get(connectionOf(w) ?? '') ?? []) {
        if (w.at <= p.now || w.at >= p.until) continue;
        callsStartedInsidePauses++;
        latestStartAfterRecordedMs = Math.max(latestStartAfterRecordedMs, w.at - p.now);
        if (w.at > p.now + GATE_MS + WRITE_SLACK_MS) callsStartedLate++;
      }
    }
    // The same from the platform's side: arrivals at the sandbox, counted from when this process
    // read the pause event (`seenAt`), both held up by the load (`sandboxLoopDelayMaxMs`).
    const sandboxMarginMs = Math.max(SANDBOX_MARGIN_MIN_MS, 2 * sandboxLoopDelayMaxMs + 20);
    let callsArrivedLate = 0;
    let callsArrivedInsidePauses = 0;
    const lateMs: number[] = [];
    let latestAfterRecordedMs = 0;
    let latestAfterSeenMs = 0;
    let eventSeenLagMaxMs = 0;
    const arrivals = new Map<string, number[]>();
    for (const r of received) {
      const c = connectionOf(r);
      if (c !== undefined) (arrivals.get(c) ?? arrivals.set(c, []).get(c)!).push(r.at);
    }
    for (const [c, ps] of pausesOf) {
      for (const p of ps) {
        eventSeenLagMaxMs = Math.max(eventSeenLagMaxMs, p.seenAt - p.now);
        for (const t of arrivals.get(c) ?? []) {
          if (t <= p.now || t >= p.until) continue;
          callsArrivedInsidePauses++;
          latestAfterRecordedMs = Math.max(latestAfterRecordedMs, t - p.now);
          latestAfterSeenMs = Math.max(latestAfterSeenMs, t - p.seenAt);
          if (t >= p.seenAt + GATE_MS + sandboxMarginMs) {
            callsArrivedLate++;
            lateMs.push(t - p.seenAt);
          }
        }
      }
    }
    const pauses = pauseEvents.length;
    const throttled = received.filter((r) => r.status === 429 || r.status === 503).length;
    expect(pauses).toBeGreaterThan(0);

    // Changes applied twice. Conductor and Nected read before they write and skip what is done,
    // so they never apply twice. Alloy's upgrade and Tallyfy's update are plain writes: a write
    // that landed but whose answer never came back (a slow answer past the timeout, or a worker
    // killed mid-call) is sent again, with the same effect. Those from timeouts are counted apart.
    const applied = sandbox.stats().appliedByTarget;
    const doubles = Object.entries(applied).filter(([, n]) => n > 1);
    const targetOfWrite = (r: (typeof received)[number]): string | undefined => {
      const alloy = /^\/workflows\/([^/]+)\/upgrade\?userId=(.*)$/.exec(r.path);
      if (alloy) return `alloy:${decodeURIComponent(alloy[1]!)}:${decodeURIComponent(alloy[2]!)}`;
      const run = /^\/organizations\/([^/]+)\/runs\/([^/?]+)$/.exec(r.path);
      if (run && r.method === 'PUT') return `tallyfy:${decodeURIComponent(run[1]!)}:${decodeURIComponent(run[2]!)}`;
      return undefined;
    };
    // Timed out: the sandbox answered the write late on purpose (its `slow` fault), or the load
    // held the answer up past the call timeout (the target's last error is the timeout).
    const timedOutWrites = new Set([...received.filter((r) => r.fault === 'slow').map(targetOfWrite), ...lastErrorTimeout]);
    const doublesFromKills = doubles.filter(([k]) => !timedOutWrites.has(k)).length;
    const faults = sandbox.stats().faults;
    const figures = {
      targets: CAMPAIGNS * PER_CAMPAIGN,
      elapsedS: Math.round(elapsedMs / 1000),
      kills,
      workerProcesses: procs.length,
      requests: received.length,
      faultsInjected: faults,
      retryAfterAnswers: throttled,
      retryAfterPauses: pauses,
      gateMs: GATE_MS,
      writeSlackMs: WRITE_SLACK_MS,
      callsWritten: written.length,
      callsStartedInsidePauses,
      callsStartedLate,
      latestStartAfterRecordedMs,
      sandboxMarginMs,
      callsArrivedInsidePauses,
      callsArrivedLate,
      ...(lateMs.length > 0 ? { callsArrivedLateMsAfterSeen: lateMs } : {}),
      latestArrivalAfterRecordedMs: latestAfterRecordedMs,
      latestArrivalAfterSeenMs: latestAfterSeenMs,
      sandboxLoopDelayMaxMs,
      pauseEventSeenLagMaxMs: eventSeenLagMaxMs,
      maxInFlightPerKey: Math.max(...Object.values(maxByKey)),
      limitPerKey: TENANT_LIMIT,
      failed,
      lost: 0,
      appliedTwice: doubles.length,
      appliedTwiceAfterTimeout: doubles.length - doublesFromKills,
      appliedTwiceAfterKill: doublesFromKills,
      appliedTwicePerKill: Number((doublesFromKills / kills).toFixed(2)),
      appliedTwiceByPlatform: Object.fromEntries(['alloy', 'conductor:exec', 'conductor:def', 'tallyfy', 'nected'].map((p) => [p, doubles.filter(([k]) => k.startsWith(p)).length])),
    };
    console.log(`chaos figures: ${JSON.stringify(figures)}`);
    expect(callsStartedLate).toBe(0);
    expect(callsArrivedLate).toBe(0);
    // Every call the sandbox received was seen written (a SIGKILLed worker's too): nothing escaped the log.
    expect(written.length).toBeGreaterThanOrEqual(received.length);
    // Reads-first operations never apply twice; plain writes at most once per call a kill cut
    // off (a killed worker had at most 25 calls in flight).
    expect(doubles.filter(([k]) => !k.startsWith('alloy') && !k.startsWith('tallyfy'))).toEqual([]);
    expect(doublesFromKills).toBeLessThanOrEqual(kills * 25);
    recordFigures('chaos', figures);
  }, LOADED_TIMEOUT_MS);
});
