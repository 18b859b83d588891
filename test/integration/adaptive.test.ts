import { describe, expect, it, vi } from 'vitest';
import { sandboxConnections } from '../../scripts/lib/connections.js';
import { enqueueCampaign, pauseCampaign } from '../../src/producer/index.js';
import { campaignKeys, createApiMetrics, DEFAULTS, eventsChannel, readStatus, schedulerKeys, type CallSample, type Pick } from '../../src/shared/index.js';
import { readLimitUsage } from '../../src/producer/api/limits.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { setupDeployment, type Deployment } from '../support/deployment.js';
import { waitForCompletion } from '../support/harness.js';
import { nectedGraph } from '../support/fleet.js';

/**
 * Adaptive concurrency (`concurrency: {adaptive: {min, max, initial}}`): one figure per key
 * value in Redis, moved by the calls that end on the key, read by dispatch as the key's
 * concurrency. Everything here is asserted on directions, bounds and counts (the sandbox's
 * capacity model is deterministic), never on how fast the figure moves.
 */

const CONN = 'UPSHIFT_TEST_ALLOY_KEY';
/** The key value of a campaign's own limit `platform` on CONN. */
const KEY = `${CONN}/platform`;
/** Every test target's limit key in the sandbox (`limitKeyPattern`): all of them are on one key. */
const PATTERN = '^alloy:[^:]+:(u)-';

const adaptive = (min: number, max: number, initial: number) => [{ key: 'platform', concurrency: { adaptive: { min, max, initial } } }];
const users = (tag: string, n: number) => Array.from({ length: n }, (_, i) => ({ userId: `u-${tag}-${i}` }));
const installs = (targets: { userId: string }[]) => ({
  alloy: { workflows: { 'wf-1': { latestVersion: 2 } }, installs: targets.map(({ userId }) => ({ workflowId: 'wf-1', userId, version: 1 })) },
});

async function figure(t: Deployment, key = KEY): Promise<number | null> {
  const c = await t.redis.hget(schedulerKeys(t.prefix).adapt(key), 'c');
  return c === null ? null : Math.floor(Number(c));
}

/** The most requests in flight together (arrival to answer, ms) among `calls`. */
function mostAtOnce(calls: readonly { at: number; answeredAt?: number }[]): number {
  // An end sorts before a start at the same ms: a slot freed and taken in one ms is one call.
  // A call answered in the ms it arrived (a 429 is shed at once) held nothing.
  const events = calls
    .flatMap((r) => (r.answeredAt === undefined || r.answeredAt <= r.at ? [] : [[r.at, 1] as const, [r.answeredAt, -1] as const]))
    .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of events) most = Math.max(most, (now += d));
  return most;
}

/** Installs `targets` on the sandbox, then enqueues campaign `id` of them under `limits`. */
async function enqueue(t: Deployment, sandbox: Sandbox, id: string, targets: { userId: string }[], limits: unknown[], extra: Record<string, unknown> = {}) {
  sandbox.load(installs(targets));
  await enqueueCampaign(
    { id, connection: CONN, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' }, limits, retry: { attempts: 5, backoffMs: 10 }, ...extra },
    targets,
    t.producer,
  );
}

describe('adaptive concurrency against the sandbox', () => {
  const t = setupDeployment({ credentials: true });

  it('climbs from its initial figure to the capacity, and comes back down when the capacity drops', async () => {
    const sandbox = await t.startSandbox({ latencyMs: 30, capacity: 10, limitKeyPattern: PATTERN });
    // More targets than the test needs: it stops the campaign once it has seen both directions.
    const targets = users('a', 5000);
    await enqueue(t, sandbox, 'ad', targets, adaptive(1, 64, 2));
    await t.startWorker({ concurrency: 50 });

    // Up from 2: the key reaches the platform's capacity (waited for, however slow the machine).
    await vi.waitFor(() => expect(sandbox.stats().maxInFlightByKey.u).toBeGreaterThanOrEqual(10), { timeout: 90_000, interval: 20 });
    expect((await figure(t))!).toBeLessThanOrEqual(64);

    // Down: the platform now takes 3. Once another 100 calls have ended, the figure is under what
    // the platform answers at all (2 x 3), plus the one step it may be taking toward it.
    sandbox.configure({ capacity: 3 });
    await sandbox.requestsReached(sandbox.stats().requests + 100);
    const after = (await figure(t))!;
    expect(after).toBeGreaterThanOrEqual(1);
    expect(after).toBeLessThanOrEqual(2 * 3 + 1);
    expect(Number(await t.redis.hget(campaignKeys(t.prefix, 'ad').status, `limit:${KEY}`))).toBeLessThanOrEqual(2 * 3 + 1);
    expect(sandbox.stats().overCapacity).toBeGreaterThan(0);
    await pauseCampaign('ad', t.producer);
  });

  it('comes under a halved capacity: the cut lands under what the platform now answers unqueued', async () => {
    // max 10 = 2 x the capacity it ends at: no call is shed, only the latency says the platform
    // got smaller (above its capacity it answers 30 ms x calls in flight / capacity).
    const sandbox = await t.startSandbox({ latencyMs: 30, capacity: 10, limitKeyPattern: PATTERN });
    await enqueue(t, sandbox, 'half', users('h', 5000), adaptive(1, 10, 2));
    await t.startWorker({ concurrency: 20 });
    await vi.waitFor(async () => expect(await figure(t)).toBe(10), { timeout: 90_000, interval: 20 });

    sandbox.configure({ capacity: 5 });
    // Within the next 400 calls the figure gets to the new capacity (a figure that settles above
    // it, as one whose cuts stop at its hold line would, never does).
    let least = 10;
    for (let seen = sandbox.stats().requests, end = seen + 400; seen < end && least > 5; seen += 5) {
      await sandbox.requestsReached(seen + 5);
      least = Math.min(least, (await figure(t))!);
    }
    expect(least).toBeGreaterThanOrEqual(1);
    expect(least).toBeLessThanOrEqual(5);
    expect(sandbox.stats().overCapacity).toBe(0);
    await pauseCampaign('half', t.producer);
  });

  it('is one figure for every worker: 3 worker processes together stay at max', async () => {
    // No capacity: only the figure bounds the key. Per worker, 3 x 10 slots could hold 18.
    const sandbox = await t.startSandbox({ latencyMs: 100, limitKeyPattern: PATTERN });
    const targets = users('g', 150);
    await enqueue(t, sandbox, 'global', targets, adaptive(1, 6, 1));
    await Promise.all([1, 2, 3].map(() => t.spawnWorker(['--concurrency', '10'])));

    expect(await waitForCompletion(t.prefix, 'global', 120_000)).toMatchObject({ state: 'completed', upgraded: 150 });
    const most = sandbox.stats().maxInFlightByKey.u!;
    expect(most).toBeGreaterThan(1); // it went up from 1
    expect(most).toBeLessThanOrEqual(6);
    expect(await t.redis.keys(`${t.prefix}:sched:adapt:*`)).toEqual([schedulerKeys(t.prefix).adapt(KEY)]);
    const f = (await figure(t))!;
    expect(f).toBeGreaterThanOrEqual(1);
    expect(f).toBeLessThanOrEqual(6);
  });

  it('still pauses the whole connection on a Retry-After, and cuts the figure too', async () => {
    // Capacity 1: a third call in flight is answered 429 Retry-After 1.
    const sandbox = await t.startSandbox({ latencyMs: 100, capacity: 1, limitKeyPattern: PATTERN });
    const targets = users('r', 12);
    await enqueue(t, sandbox, 'ra', targets, adaptive(1, 8, 8));
    await t.startWorker({ concurrency: 20 });

    const status = await waitForCompletion(t.prefix, 'ra', 120_000);
    expect(status).toMatchObject({ state: 'completed', upgraded: 12, failed: 0 });
    expect(status.retryAfterWaits).toBeGreaterThanOrEqual(1);
    expect(status.retryAfterWaitMs).toBeGreaterThanOrEqual(1000);
    expect(sandbox.stats().overCapacity).toBe(status.retryAfterWaits);
    // The connection was paused (the pause record outlives the pause) ...
    expect(await t.redis.hlen(schedulerKeys(t.prefix).pause)).toBe(1);
    // ... and the figure left 8 behind: it is under what the first 429 saw.
    expect((await figure(t))!).toBeLessThan(8);
  });

  it('after a Retry-After pause sends at once only what the cut figure allows: the runs held beyond it give their targets back', async () => {
    // Capacity 5: above 10 calls in flight the platform answers 429 Retry-After 1. Each target
    // is a GET then a PUT (Tallyfy). 12 start at once: 2 GETs are shed and pause the connection
    // (the figure goes to 12 x 0.7 x 0.5, restarting under the cut), and the runs whose GET was
    // answered find their PUT held by the pause, 10 slots on the key against a figure of 4. Were
    // they all to leave at the pause's end, 10 calls would be in flight at once.
    const sandbox = await t.startSandbox({ latencyMs: 20, capacity: 5, record: true });
    const ids = Array.from({ length: 12 }, (_, i) => `run-${i}`);
    sandbox.load({ tallyfy: { runs: ids.map((id) => ({ orgId: 'org', id, name: 'old', summary: '', tags: [], folders: [] })) } });
    await enqueueCampaign(
      {
        id: 'held',
        connection: 'UPSHIFT_TEST_TALLYFY_KEY',
        operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'new' } },
        limits: adaptive(1, 12, 12),
      },
      ids.map((runId) => ({ runId })),
      t.producer,
    );
    await t.startWorker({ concurrency: 30 });

    const status = await waitForCompletion(t.prefix, 'held', 60_000);
    expect(status).toMatchObject({ state: 'completed', total: 12, upgraded: 12, failed: 0, skipped: 0, pending: 0, active: 0 });
    expect(Number(await t.redis.hget(campaignKeys(t.prefix, 'held').status, 'admitted'))).toBe(12);
    // Every run written exactly once: nothing given back was also sent, nothing was lost.
    expect(sandbox.stats().appliedByTarget).toEqual(Object.fromEntries(ids.map((id) => [`tallyfy:org:${id}`, 1])));
    // No holder left behind by a give-back: no lease, no inflight entry, no slot.
    expect(await t.redis.zcard(schedulerKeys(t.prefix).leases)).toBe(0);
    expect(await t.redis.hlen(schedulerKeys(t.prefix).inflight)).toBe(0);

    const calls = sandbox.received!;
    const shed = calls.filter((r) => r.status === 429);
    expect(shed.length).toBeGreaterThanOrEqual(1);
    // Every call that arrived after the first one shed: the pause's end and what followed (the
    // calls in flight at the cut answer first, and move the figure no further meanwhile). The
    // most of them in flight together is within the figure as the 429 cut it.
    const after = calls.filter((r) => r.at > shed[0]!.at);
    const most = mostAtOnce(after);
    expect(most).toBeGreaterThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(Math.floor(12 * DEFAULTS.adaptiveDecreaseFactor * DEFAULTS.adaptiveRetryAfterRestartFactor));
    // Each 429 was one Retry-After wait, counted once.
    expect(status.retryAfterWaits).toBe(shed.length);
  });

  it('a run held by a pause after its write keeps its target, even beyond the cut figure: given back, it would run again and count its own write as current', async () => {
    // Nected with `verify`: a GET, the PATCH, a GET reading it back. `undo: false`, so a second
    // run has no kept pre-image to recognise its own write by: it would find the patch in place
    // and record ALREADY_CURRENT (skipped) for a target this campaign upgraded.
    const sandbox = await t.startSandbox({ latencyMs: 500, record: true });
    const ids = ['w-0', 'w-1', 'w-2'];
    sandbox.load({ nected: { workflows: ids.map((entityId) => ({ entityId, graph: nectedGraph(entityId) })) } });
    // The third PATCH is shed at once (capacity 1: over 2 calls in flight), after the other two
    // were taken: the connection pauses while their answers are on the way, so both read-backs
    // meet the pause, 2 slots held against the figure the 429 cut from 3 to 1. The capacity goes
    // back to unlimited for the first call after the pause, so the rest is answered. (A request
    // counts as it arrives, and its answer is decided after its body is read: a capacity set when
    // the n-th arrives applies to the n-th.)
    void sandbox.requestsReached(6).then(() => sandbox.configure({ capacity: 1 }));
    void sandbox.requestsReached(7).then(() => sandbox.configure({ capacity: null }));
    await enqueueCampaign(
      {
        id: 'wrote',
        connection: 'UPSHIFT_TEST_NECTED_KEY',
        operation: { type: 'nected.updateWorkflow', patch: [{ op: 'replace', path: '/settings/auditIO', value: true }] },
        verify: true,
        undo: false,
        limits: adaptive(1, 3, 3),
      },
      ids.map((entityId) => ({ entityId })),
      t.producer,
    );
    await t.startWorker({ concurrency: 10 });

    const status = await waitForCompletion(t.prefix, 'wrote', 60_000);
    const calls = sandbox.received!;
    // The shape the test stands on: the three reads, then the three PATCHes, the last one shed.
    expect(calls.slice(0, 6).map((r) => `${r.method} ${r.status}`)).toEqual(['GET 200', 'GET 200', 'GET 200', 'PATCH 200', 'PATCH 200', 'PATCH 429']);
    const shed = calls.filter((r) => r.status === 429);
    expect(shed).toHaveLength(1);
    expect(status).toMatchObject({ state: 'completed', total: 3, upgraded: 3, skipped: 0, failed: 0, retryAfterWaits: 1 });
    // Each target written once; the two held read-backs were sent after the pause, not into it.
    expect(sandbox.stats().appliedByTarget).toEqual(Object.fromEntries(ids.map((id) => [`nected::${id}`, 1])));
    const heldReads = calls.filter((r) => r.method === 'GET' && r.at > shed[0]!.at && r.at < shed[0]!.at + 1000);
    expect(heldReads).toEqual([]);
    // 3 GETs, 3 PATCHes (one shed), 2 read-backs, then the shed target again: GET, PATCH, GET.
    expect(calls).toHaveLength(11);
  });

  it('learns its no-load latency only from the platform\'s answers: connection resets (0 ms) do not set it', async () => {
    // A reset comes back at once; the platform's answers take 30 ms. One reset read as a latency
    // would set the no-load latency near 0, and every normal round would then read as queued.
    const sandbox = await t.startSandbox({ latencyMs: 30, resetRate: 0.3, limitKeyPattern: PATTERN });
    await enqueue(t, sandbox, 'resets', users('z', 400), adaptive(1, 8, 4), { retry: { attempts: 10, backoffMs: 10 } });
    await t.startWorker({ concurrency: 10 });
    await vi.waitFor(() => expect(sandbox.stats().faults.resets).toBeGreaterThanOrEqual(30), { timeout: 90_000, interval: 20 });
    await vi.waitFor(async () => expect(await t.redis.hget(schedulerKeys(t.prefix).adapt(KEY), 'base')).not.toBeNull(), { timeout: 90_000, interval: 20 });
    await pauseCampaign('resets', t.producer);
    // A timer may fire up to a millisecond early: the platform's own latency, with room for that.
    expect(Number(await t.redis.hget(schedulerKeys(t.prefix).adapt(KEY), 'base'))).toBeGreaterThanOrEqual(30 - 2);
  });

  it('survives a worker restart: the next worker starts from the learnt figure, not the initial one', async () => {
    // Slow calls and few of them: a loaded machine's stalls stay well under a latency rise (2 x 200 ms).
    const sandbox = await t.startSandbox({ latencyMs: 200, limitKeyPattern: PATTERN });
    const first = users('s1', 12);
    await enqueue(t, sandbox, 'before', first, adaptive(1, 6, 6));
    await t.startWorker({ concurrency: 10 });
    await waitForCompletion(t.prefix, 'before', 60_000);
    const learnt = (await figure(t))!;
    expect(learnt).toBeGreaterThanOrEqual(3);
    await t.closeWorkers();

    // Calls long enough that all of the next campaign's first picks are in the sandbox at once.
    sandbox.reset();
    sandbox.configure({ latencyMs: 1000, limitKeyPattern: PATTERN });
    const second = users('s2', learnt);
    await enqueue(t, sandbox, 'after', second, adaptive(1, 6, 1));
    await t.startWorker({ concurrency: 10 });
    await waitForCompletion(t.prefix, 'after', 60_000);
    // From initial 1 the key would have started one call, then two: it started `learnt` at once.
    expect(sandbox.stats().maxInFlightByKey.u).toBe(learnt);
  });
});

/** The figure's bounds driven through the scheduler scripts, call by call, with no worker. */
describe('adaptive concurrency in the scheduler scripts', () => {
  const LEASE = 60_000;
  const connections = sandboxConnections('http://127.0.0.1:1', ['K']);
  const t = setupDeployment({ standIn: { leaseMs: LEASE, concurrency: 100 } });
  const userOf = (p: Pick) => (JSON.parse(p.entry) as { userId: string }).userId;
  const adaptKey = () => schedulerKeys(t.prefix).adapt('K/k');

  /** Claims and finishes `p` with `call`; returns the picks the finish dispatched. */
  const complete = async (p: Pick, call: CallSample) => {
    await t.scripts.claim(p.holder, 'run', LEASE, userOf(p), eventsChannel(t.prefix));
    return (
      await t.scripts.finish({
        holder: p.holder, token: 'run', campaignId: 'b', targetKey: userOf(p), outcome: 'upgraded', reason: 'UPGRADED',
        recordJson: '{}', channel: eventsChannel(t.prefix), maxPicks: 100, leaseMs: LEASE, call,
      })
    ).picks;
  };

  /**
   * A campaign's first dispatch, and `calls(n, call)`: ends the first running call `n` times,
   * each after `call` (ms alone: an unqueued answer), its finish dispatching its replacement.
   */
  const started = async () => {
    let running = (await t.scripts.dispatch(100, LEASE)).picks;
    return {
      running: () => running,
      calls: async (n: number, call: number | CallSample) => {
        for (let k = 0; k < n; k++) {
          const [p, ...rest] = running;
          running = [...rest, ...(await complete(p!, typeof call === 'number' ? { ms: call, overload: false } : call))];
        }
      },
    };
  };

  /** The key's figure as stored (a float). */
  const figureOfK = async () => Number(await t.redis.hget(adaptKey(), 'c'));

  /**
   * Campaign `b` of `n` targets at initial 10 (min 1, max 100), dispatched, and one round of
   * 10 ms calls behind it: the base is 10 ms and slow start has taken the figure to 15.
   */
  const atBase10 = async (n: number) => {
    await enqueueAdaptive({ min: 1, max: 100, initial: 10 }, n);
    const s = await started();
    await s.calls(10, 10);
    return s;
  };

  /** Campaign `b` of `n` Alloy targets under one adaptive limit on key `k`, not yet dispatched. */
  const enqueueAdaptive = (adaptive: { min: number; max: number; initial: number }, n: number) =>
    enqueueCampaign(
      { id: 'b', connection: 'K', operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' }, limits: [{ key: 'k', concurrency: { adaptive } }] },
      Array.from({ length: n }, (_, i) => ({ userId: `b${i}` })),
      { redis: t.redis, prefix: t.prefix, connections },
    );

  it('never goes above max on fast calls nor below min on overload answers, and dispatch holds the key to it', async () => {
    await enqueueAdaptive({ min: 2, max: 5, initial: 3 }, 80);
    let running = (await t.scripts.dispatch(100, LEASE)).picks;
    expect(running).toHaveLength(3); // initial
    const slots = () => t.redis.zcard(schedulerKeys(t.prefix).slot('K/k'));

    // 40 fast calls, each ending with the key full: up by rounds, to max and no further.
    for (let i = 0; i < 40; i++) {
      const [p, ...rest] = running;
      running = [...rest, ...(await complete(p!, { ms: 10, overload: false }))];
      expect(await slots()).toBeLessThanOrEqual(5);
    }
    expect(Number(await t.redis.hget(adaptKey(), 'c'))).toBe(5);
    expect(running).toHaveLength(5);
    expect(await t.redis.hget(campaignKeys(t.prefix, 'b').status, 'limit:K/k')).toBe('5');

    // Overload answers: each cut counts the calls then in flight as sent under the old figure
    // (their answers are one signal with it); answers to calls sent after it cut again, to min.
    let cuts = 0;
    for (let i = 0; i < 40 && Number(await t.redis.hget(adaptKey(), 'c')) > 2; i++) {
      const before = Number(await t.redis.hget(adaptKey(), 'c'));
      const [p, ...rest] = running;
      running = [...rest, ...(await complete(p!, { ms: 0, overload: true }))];
      const after = Number(await t.redis.hget(adaptKey(), 'c'));
      expect(after).toBeGreaterThanOrEqual(2);
      if (after < before) cuts++;
    }
    expect(Number(await t.redis.hget(adaptKey(), 'c'))).toBe(2);
    expect(cuts).toBe(3); // 5 -> 3.5 -> 2.45 -> 2 (min)
    while (running.length > 2) {
      const [p, ...rest] = running;
      running = [...rest, ...(await complete(p!, { ms: 0, overload: true }))];
    }
    // Dispatch gave no new slot until the key was back under the figure: two in flight now.
    expect(running).toHaveLength(2);
    expect(await slots()).toBe(2);
    // What the API's limits view and /metrics show of it.
    expect((await readLimitUsage(t.redis, t.prefix, 'b'))!.keys).toEqual([{ key: 'K/k', inUse: 2, concurrency: 2, atCapacity: true }]);
    const metrics = createApiMetrics({ redis: t.redis, prefix: t.prefix, topKeys: 5 });
    t.defer(() => metrics.close());
    const text = await metrics.render();
    expect(text).toContain('upshift_limit_adaptive_concurrency{key="K/k"} 2');
    expect(text).toContain('upshift_limit_concurrency{key="K/k"} 5'); // its max: the bound it never passes
    expect(await readStatus(t.redis, t.prefix, 'b')).toMatchObject({ state: 'running' });
  });

  it('cuts once for a burst of answers to calls sent under the old figure', async () => {
    await enqueueAdaptive({ min: 1, max: 64, initial: 16 }, 40);
    const running = (await t.scripts.dispatch(100, LEASE)).picks;
    expect(running).toHaveLength(16);
    // Eight 429s for calls that had been on the way for a minute: all sent before the first cut.
    for (const p of running.slice(0, 8)) await complete(p, { ms: 60_000, overload: true });
    expect(Number(await t.redis.hget(adaptKey(), 'c'))).toBeCloseTo(16 * DEFAULTS.adaptiveDecreaseFactor, 9);
  });

  it('cuts once for a burst of overload answers shed at once (0 ms): the calls were in flight at the cut', async () => {
    await enqueueAdaptive({ min: 1, max: 64, initial: 8 }, 40);
    const running = (await t.scripts.dispatch(100, LEASE)).picks;
    expect(running).toHaveLength(8);
    // A gateway's 429s take no time: Redis now - 0 ms is after the cut, yet all 8 were sent before it.
    for (const p of running) await complete(p, { ms: 0, overload: true });
    expect(Number(await t.redis.hget(adaptKey(), 'c'))).toBeCloseTo(8 * DEFAULTS.adaptiveDecreaseFactor, 9);
  });

  it('climbs by rounds while calls are unqueued, holds in the band, and cuts only on a second queued round', async () => {
    await enqueueAdaptive({ min: 1, max: 100, initial: 10 }, 400);
    const { calls, running } = await started();
    expect(running()).toHaveLength(10);
    const c = async () => Number(await t.redis.hget(adaptKey(), 'c'));
    // No-load latency 10 ms: the hold line is 10 x 1.05 + 2 = 12.5 ms, the rise line 10 x 1.2 + 2 =
    // 14 ms, the sure-rise line 10 x 2 + 2 = 22 ms (with the defaults' 2 ms slack).
    const hold = 10 * DEFAULTS.adaptiveHoldRatio + DEFAULTS.adaptiveSlackMs;
    const rise = 10 * DEFAULTS.adaptiveRiseRatio + DEFAULTS.adaptiveSlackMs;
    const sure = 10 * DEFAULTS.adaptiveSureRiseRatio + DEFAULTS.adaptiveSlackMs;
    const queuedMs = (rise + sure) / 2;
    // One round (a call per slot) of unqueued calls: slow start multiplies.
    await calls(9, 10);
    expect(await c()).toBe(10); // not before the round is complete
    await calls(1, 10);
    expect(await c()).toBe(10 * DEFAULTS.adaptiveSlowStartFactor);
    const up = await c();
    expect(running()).toHaveLength(Math.floor(up));
    // A round in the band (queued a little): held.
    await calls(Math.floor(up), (hold + rise) / 2);
    expect(await c()).toBe(up);
    // One queued round under the sure-rise line (a stall of the workers' own looks the same): still held.
    await calls(Math.floor(up), queuedMs);
    expect(await c()).toBe(up);
    // A second one in a row: cut to adaptiveRiseDecreaseFactor x what the platform answers
    // unqueued, figure x no-load latency / the round's mean.
    await calls(Math.floor(up), queuedMs);
    const cut = await c();
    expect(cut).toBeCloseTo(up * DEFAULTS.adaptiveRiseDecreaseFactor * (10 / queuedMs), 9);
    // Answers to calls sent before that cut (60 s ago) cut no further, however many.
    await calls(3 * Math.floor(up), 60_000);
    expect(await c()).toBe(cut);
    // The first round after it checks it: faster, so the cut stands (and that round does not vote).
    await t.redis.hset(adaptKey(), 'cut', 0);
    await calls(Math.floor(cut), 10);
    expect(await c()).toBe(cut);
    // Slow start is over: an unqueued round adds sqrt(figure), not x 1.5.
    await calls(Math.floor(cut), 10);
    expect(await c()).toBeCloseTo(cut + Math.sqrt(cut), 9);
  });

  it('cuts at once on a round whose fastest call is past the sure-rise line, as deep as its mean says', async () => {
    const { calls } = await atBase10(400);
    const c = figureOfK;
    const before = await c();
    // Every call 3 x the base, past the sure-rise line: no second round needed. A call counts in
    // the mean at most at that line (a stall must not size the cut).
    const sure = 10 * DEFAULTS.adaptiveSureRiseRatio + DEFAULTS.adaptiveSlackMs;
    await calls(Math.floor(before), 30);
    expect(await c()).toBeCloseTo(before * Math.max(DEFAULTS.adaptiveRiseDecreaseMin, (DEFAULTS.adaptiveRiseDecreaseFactor * 10) / sure), 9);
  });

  it('puts a latency cut back when the next round is no faster: the platform got slower, and its latency is re-learnt', async () => {
    const { calls } = await atBase10(400);
    const c = figureOfK;
    const before = await c();
    // A round whose fastest call is 10 x the base: cut at once.
    await calls(Math.floor(before), 100);
    expect(await c()).toBeLessThan(before);
    // The round after (calls sent after the cut, none owed from before it) is as slow: not the key's queue.
    await t.redis.hset(adaptKey(), 'cut', 0, 'skip', 0);
    await calls(Math.floor(await c()), 100);
    expect(await c()).toBe(before);
    expect(Number(await t.redis.hget(adaptKey(), 'base'))).toBe(100);
    // From there 100 ms is unqueued: the figure climbs again.
    await calls(Math.floor(before), 100);
    expect(await c()).toBeCloseTo(before + Math.sqrt(before), 9);
  });

  it('does not re-learn a latency its own figure causes as the platform\'s: the base stays while rounds hold', async () => {
    const { calls } = await atBase10(4000);
    const c = figureOfK;
    const held = await c();
    // 150 rounds between the hold and rise lines (the platform queues a little at this figure).
    const between = (10 * DEFAULTS.adaptiveHoldRatio + 10 * DEFAULTS.adaptiveRiseRatio) / 2 + DEFAULTS.adaptiveSlackMs;
    await calls(150 * Math.floor(held), between);
    expect(await c()).toBe(held);
    expect(Number(await t.redis.hget(adaptKey(), 'base'))).toBe(10);
  });

  it('after an overload answer, climbs back to just under the figure that drew it', async () => {
    await enqueueAdaptive({ min: 1, max: 100, initial: 40 }, 1000);
    const { calls } = await started();
    const c = async () => Number(await t.redis.hget(adaptKey(), 'c'));
    await calls(1, { ms: 0, overload: true });
    expect(await c()).toBeCloseTo(40 * DEFAULTS.adaptiveDecreaseFactor, 9);
    // Unqueued rounds (calls sent after the cut: 0 ms) climb, but no further than the margin.
    const ceiling = 40 * DEFAULTS.adaptiveOverloadMargin;
    for (let round = 0; round < 20; round++) {
      await calls(Math.floor(await c()), { ms: 0, overload: false });
      expect(await c()).toBeLessThanOrEqual(ceiling * (1 + 1 / DEFAULTS.adaptiveOverloadDriftRounds) ** 20);
    }
    expect(await c()).toBeGreaterThanOrEqual(ceiling);
    // ... and that figure rises while the rounds there stay unqueued, so a platform that grew is
    // found again: by 1/adaptiveOverloadDriftRounds a round spent there.
    expect(Number(await t.redis.hget(adaptKey(), 'top'))).toBeGreaterThan(40 * (1 + 1 / DEFAULTS.adaptiveOverloadDriftRounds) ** 10);
  });

  it('forgets the figure that drew an overload answer adaptiveOverloadMemoryMs after it, and climbs past it', async () => {
    await enqueueAdaptive({ min: 1, max: 100, initial: 40 }, 1000);
    const { calls } = await started();
    const c = async () => Number(await t.redis.hget(adaptKey(), 'c'));
    await calls(1, { ms: 0, overload: true });
    expect(await t.redis.hget(adaptKey(), 'top')).toBe('40');
    // The overload was answered longer ago than the memory lasts.
    const [sec] = await t.redis.time();
    await t.redis.hset(adaptKey(), 'topAt', Number(sec) * 1000 - DEFAULTS.adaptiveOverloadMemoryMs - 1);
    // (The 39 calls in flight at the cut are answered first, and count for nothing.)
    for (let round = 0; round < 8; round++) await calls(Math.floor(await c()), { ms: 0, overload: false });
    expect(await c()).toBeGreaterThan(40);
    expect(await t.redis.hget(adaptKey(), 'top')).toBeNull();
  });

  it('two campaigns with disjoint ranges on one key: the smallest max wins, and each status shows what dispatch applies to it', async () => {
    const on = (id: string, adaptive: { min: number; max: number; initial: number }, n: number) =>
      enqueueCampaign(
        { id, connection: 'K', operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' }, limits: [{ key: 'k', concurrency: { adaptive } }] },
        Array.from({ length: n }, (_, i) => ({ userId: `${id}${i}` })),
        { redis: t.redis, prefix: t.prefix, connections },
      );
    await on('wide', { min: 5, max: 20, initial: 10 }, 20);
    await on('narrow', { min: 1, max: 3, initial: 2 }, 20);
    const picks = (await t.scripts.dispatch(100, LEASE)).picks;
    const end = async (id: string, call: CallSample) => {
      const p = picks.find((x) => userOf(x).startsWith(id))!;
      picks.splice(picks.indexOf(p), 1);
      await t.scripts.claim(p.holder, 'run', LEASE, userOf(p), eventsChannel(t.prefix));
      await t.scripts.finish({
        holder: p.holder, token: 'run', campaignId: id, targetKey: userOf(p), outcome: 'upgraded', reason: 'UPGRADED',
        recordJson: '{}', channel: eventsChannel(t.prefix), maxPicks: 0, leaseMs: LEASE, call,
      });
    };
    const c = async () => Number(await t.redis.hget(adaptKey(), 'c'));
    const shown = (id: string) => t.redis.hget(campaignKeys(t.prefix, id).status, 'limit:K/k');
    expect(picks.some((p) => userOf(p).startsWith('wide'))).toBe(true);
    expect(picks.some((p) => userOf(p).startsWith('narrow'))).toBe(true);
    // A call of `wide`: the figure stays under `narrow`'s max, which dispatch applies to both.
    await end('wide', { ms: 10, overload: false });
    expect(await c()).toBeLessThanOrEqual(3);
    expect(await shown('wide')).toBe('3');
    // `narrow` cuts it; `wide`'s next call does not lift it back to its own min (nor to 3).
    await end('narrow', { ms: 0, overload: true });
    const cut = await c();
    expect(cut).toBeCloseTo(3 * DEFAULTS.adaptiveDecreaseFactor, 9);
    expect(await shown('narrow')).toBe(String(Math.floor(cut)));
    await end('wide', { ms: 10, overload: false });
    expect(await c()).toBe(cut);
    // Dispatch still runs `wide` at the key's max, under its own min: so does its status.
    expect(await shown('wide')).toBe('3');
  });

  it('gives back, during a Retry-After pause, only the held runs beyond the cut figure, each once and counted exactly', async () => {
    await enqueueAdaptive({ min: 1, max: 100, initial: 10 }, 20);
    const running = (await t.scripts.dispatch(100, LEASE)).picks;
    expect(running).toHaveLength(10);
    for (const p of running) await t.scripts.claim(p.holder, 'run', LEASE, userOf(p), eventsChannel(t.prefix));
    const status = () => t.redis.hmget(campaignKeys(t.prefix, 'b').status, 'pending', 'active', 'admitted');
    // No pause: a run keeps its slots, whatever the figure.
    expect(await t.scripts.giveBack(running[0]!.holder, 'run')).toBe('kept');
    // A 429 pauses the connection and cuts the figure (10 x 0.7, then x 0.5 for the pause: 3);
    // 9 runs hold slots.
    const [shed, ...held] = running;
    const until = await t.scripts.throttle(shed!.holder, 'run', userOf(shed!), 5000, 'THROTTLED: 429', eventsChannel(t.prefix), 0, { ms: 0, overload: true });
    expect(await figureOfK()).toBeCloseTo(10 * DEFAULTS.adaptiveDecreaseFactor * DEFAULTS.adaptiveRetryAfterRestartFactor, 9);
    const cut = Math.floor(await figureOfK());
    expect(await t.redis.hget(adaptKey(), 'ss')).toBe('1'); // the climb restarts in slow start
    // The cut passes over the answers of the 9 calls then in flight ('skip').
    expect(await t.redis.hget(adaptKey(), 'skip')).toBe('9');
    // Not this run's lease (another token): nothing changes, and it must not send.
    expect(await t.scripts.giveBack(held[0]!.holder, 'other')).toBe('lost');
    const answers = [];
    for (const p of held) answers.push(await t.scripts.giveBack(p.holder, 'run'));
    expect(answers).toEqual([...Array<string>(9 - cut).fill('given-back'), ...Array<string>(cut).fill('kept')]);
    expect(await t.redis.zcard(schedulerKeys(t.prefix).slot('K/k'))).toBe(cut);
    // The runs given back will never answer: only the kept ones' answers are passed over, so the
    // first answer of a target admitted after the pause counts (a 429 among them cuts again).
    expect(await t.redis.hget(adaptKey(), 'skip')).toBe(String(cut));
    // A given-back run's holder is gone: asked again, or delivered again, it is lost.
    expect(await t.scripts.giveBack(held[0]!.holder, 'run')).toBe('lost');
    expect(await t.scripts.claim(held[0]!.holder, 'again', LEASE, userOf(held[0]!), eventsChannel(t.prefix))).toEqual({ kind: 'lost' });
    // 20 targets: `cut` running, the rest pending (10 never started, the shed one, those given back).
    const counts = [String(20 - cut), String(cut), String(cut)];
    expect(await status()).toEqual(counts);
    // During the pause nothing is dispatched; its groups wake at its end.
    const r = await t.scripts.dispatch(100, LEASE);
    expect(r.picks).toHaveLength(0);
    expect(r.nextWakeMs).toBe(until);
    expect(await status()).toEqual(counts);
  });

  it('does not climb while the key uses under half its figure (the tail of a campaign)', async () => {
    await enqueueAdaptive({ min: 1, max: 100, initial: 10 }, 10);
    const running = (await t.scripts.dispatch(100, LEASE)).picks;
    expect(running).toHaveLength(10);
    // Ten unqueued calls, a whole round; with no target left, the key empties as they end.
    for (const p of running) await complete(p, { ms: 10, overload: false });
    expect(Number(await t.redis.hget(adaptKey(), 'c'))).toBe(10);
    expect(await t.redis.hget(adaptKey(), 'ss')).toBe('1');
  });
});
