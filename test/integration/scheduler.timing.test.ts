import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { Agent, request } from 'undici';
import { SANDBOX_KEYS, type Sandbox, type SandboxOptions } from '../../src/sandbox/index.js';
import { schedulerKeys } from '../../src/shared/index.js';
import { setupDeployment, type WorkerStartOptions } from '../support/deployment.js';
import { type WorkerProcess } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

/** Targets `t<k>-u<i>` spread over `keys` tenants with Zipf weights 1/(k+1). */
function skewedFleet(n: number, keys: number, wf = 'wf-1') {
  const weights = Array.from({ length: keys }, (_, k) => 1 / (k + 1));
  const sum = weights.reduce((a, b) => a + b, 0);
  const targets: { userId: string; tenant: string }[] = [];
  let i = 0;
  weights.forEach((w, k) => {
    const count = k === keys - 1 ? n - targets.length : Math.round((n * w) / sum);
    for (let j = 0; j < count; j++) targets.push({ userId: `t${k}-u${i++}`, tenant: `t${k}` });
  });
  return {
    targets,
    fixtures: { alloy: { workflows: { [wf]: { latestVersion: 2 } }, installs: targets.map((t) => ({ workflowId: wf, userId: t.userId, version: 1 })) } },
  };
}

/** Mean time of one alloy upgrade call made back to back, outside Upshift. */
async function sequentialCallMs(s: Sandbox, n: number): Promise<number> {
  s.load({ alloy: { workflows: { 'wf-cal': { latestVersion: 2 } }, installs: Array.from({ length: n }, (_, i) => ({ workflowId: 'wf-cal', userId: `cal-${i}`, version: 1 })) } });
  const agent = new Agent();
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const res = await request(`${s.url}/workflows/wf-cal/upgrade?userId=cal-${i}`, {
      method: 'PUT',
      dispatcher: agent,
      headers: { authorization: `bearer ${SANDBOX_KEYS.alloy}`, 'x-api-version': '2025-09' },
    });
    expect(res.statusCode).toBe(200);
    await res.body.text();
  }
  const ms = (performance.now() - started) / n;
  await agent.close();
  return ms;
}


describe('scheduler: limits, wake-up, rates, Retry-After, fairness, leases', () => {
  const t = setupDeployment({ credentials: true, workerDefaults: { concurrency: 10 } });
  const sandbox = (opts: Partial<SandboxOptions> = {}) => t.startSandbox({ record: true, ...opts });
  const work = (opts: WorkerStartOptions = {}) => t.startWorker(opts);
  const alloySpec = (id: string, s: Sandbox, extra: Record<string, unknown> = {}) => ({
    id,
    connection: { baseUrl: s.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 5000 },
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
    ...extra,
  });
  const fast = ['--lease-ms', '1500', '--lock-duration-ms', '1000', '--stalled-interval-ms', '500'];

  it('never passes a per-key limit across 3 worker processes, with one SIGKILLed mid-run', async () => {
    const s = await sandbox({ latencyMs: 3, record: false, limitKeyPattern: '^alloy:[^:]+:(t\\d+)-' });
    const fleet = skewedFleet(10_000, 20);
    s.load(fleet.fixtures);
    const targets = fleet.targets;
    const { campaignId } = await enqueueCampaign(
      alloySpec('limits', s, { limits: [{ key: '${target.tenant}', concurrency: 3 }] }),
      targets,
      t.producer,
    );
    const procs: WorkerProcess[] = [];
    for (let i = 0; i < 3; i++) procs.push(await t.spawnWorker(['--concurrency', '20', ...fast]));
    await s.requestsReached(3000);
    procs[0]!.proc.kill('SIGKILL');
    const status = await waitForCompletion(t.prefix, campaignId, 120_000);

    expect(status).toMatchObject({ total: 10_000, upgraded: 10_000, failed: 0, pending: 0, active: 0 });
    const max = s.stats().maxInFlightByKey;
    expect(Object.keys(max)).toHaveLength(20);
    for (const [tenant, n] of Object.entries(max)) expect(n, tenant).toBeLessThanOrEqual(3);
    // Capacity is used, not wasted: every key reached its limit at some point.
    expect(Math.max(...Object.values(max))).toBe(3);
    // All slots came back: nothing is held once the campaign is done.
    expect(await t.redis.hlen(schedulerKeys(t.prefix).inflight)).toBe(0);
    // (The campaign's key values are scoped to its connection: the sandbox's entry for the variable.)
    for (let k = 0; k < 20; k++) expect(await t.redis.zcard(schedulerKeys(t.prefix).slot(`UPSHIFT_TEST_ALLOY_KEY/t${k}`))).toBe(0);
  });

  it('wakes the next target of a full key at once: limit 1, 200 targets at 10 ms', async () => {
    const s = await sandbox({ latencyMs: 10 });
    const fleet = skewedFleet(200, 1);
    s.load(fleet.fixtures);
    // What one call costs here, sandbox included, measured the same way the workers call.
    const callMs = await sequentialCallMs(s, 50);
    s.received!.splice(0);
    // A worker process of its own, as deployed: not sharing this process's event loop with the sandbox.
    await t.spawnWorker(['--concurrency', '10']);
    const { campaignId } = await enqueueCampaign(alloySpec('wake', s, { limits: [{ key: 'one', concurrency: 1 }] }), fleet.targets, t.producer);
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status.upgraded).toBe(200);
    expect(s.stats().maxInFlight).toBe(1);
    const makespanMs = status.finishedAt! - status.createdAt!;
    // Wake-up: from one call's arrival to the next, beyond what a call itself takes.
    const gaps = s.received!.slice(1).map((r, i) => r.at - s.received![i]!.at - callMs).sort((x, y) => x - y);
    const median = gaps[gaps.length >> 1]!;
    console.log(
      `wake-up: 200 targets, limit 1: ${makespanMs} ms for calls of ${callMs.toFixed(1)} ms (10 ms latency + the sandbox); ` +
        `gap beyond a call: median ${median.toFixed(1)} ms, p99 ${gaps[Math.floor(gaps.length * 0.99)]!.toFixed(1)} ms`,
    );
    expect(median).toBeLessThan(5);
    // The makespan against 200 bare calls is measured in the bench (BENCHMARKS.md, wake-up:
    // 1.09); here only a gross regression is caught (a wake by timer instead of by event costs
    // several times a call per target). 1.3x failed once in five fresh-clone CI runs on a loaded
    // 2-core machine (3,856 ms against 3,700) while the median gap stayed within bound.
    expect(makespanMs).toBeLessThan(2 * 200 * callMs);
  });

  it('holds a rate: no 1 s window over the cap, and 85–105% of it over 10 s', async () => {
    const s = await sandbox({ latencyMs: 0 });
    const fleet = skewedFleet(700, 1);
    s.load(fleet.fixtures);
    await work({ concurrency: 20 });
    const started = Date.now();
    await enqueueCampaign(alloySpec('rate', s, { limits: [{ key: 'rated', rate: { max: 50, perMs: 1000 } }] }), fleet.targets, t.producer);
    // The 10 s window from the first call is whole once a call arrives after its end.
    await s.requestsReached(1);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    await s.requestsReached(s.stats().requests + 1);
    const times = s.received!.map((r) => r.at).filter((t) => t - s.received![0]!.at < 10_000);
    let worst = 0;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[i]! - times[j]! >= 1000) j++;
      worst = Math.max(worst, i - j + 1);
    }
    console.log(`rate: ${times.length} calls in 10 s (cap 500), busiest 1 s window ${worst} (cap 50), enqueue at +${s.received![0]!.at - started} ms`);
    // Evenly spaced starts put 50 or 51 in a second (fence posts, arrival jitter); a burst at a
    // window's edge would put up to 100 there.
    expect(worst).toBeLessThanOrEqual(55);
    // The cap is the guarantee (above, and the upper bound below); how close a loaded machine
    // gets to it is liveness, which a 2-core CI machine under load held to 0.92 once (460 of 500).
    expect(times.length).toBeGreaterThanOrEqual(0.85 * 500);
    expect(times.length).toBeLessThanOrEqual(1.05 * 500);
  });

  it('pauses only the connection that answered Retry-After; the other keeps going', async () => {
    const a = await sandbox({ latencyMs: 5, throttleRate: 0.05, retryAfterS: 1, seed: 3 });
    const b = await sandbox({ latencyMs: 5 });
    const fa = skewedFleet(300, 1);
    const fb = skewedFleet(1500, 1);
    a.load(fa.fixtures);
    b.load(fb.fixtures);
    await work({ concurrency: 10 });
    const [ca, cb] = await Promise.all([
      enqueueCampaign(alloySpec('conn-a', a), fa.targets, t.producer),
      enqueueCampaign(alloySpec('conn-b', b), fb.targets, t.producer),
    ]);
    const [sa, sb] = await Promise.all([waitForCompletion(t.prefix, ca.campaignId), waitForCompletion(t.prefix, cb.campaignId)]);
    expect(sa).toMatchObject({ upgraded: 300, failed: 0 });
    expect(sb).toMatchObject({ upgraded: 1500, failed: 0, retryAfterWaits: 0 });
    const throttles = a.stats().faults.throttled;
    expect(throttles).toBeGreaterThan(0);
    expect(sa.retryAfterWaits).toBe(throttles);
    expect(sa.retries).toBe(0); // waits do not use attempts

    // A 429 is answered at `at + latency` and pauses the connection from then on for 1 s. A
    // call already claimed by then may still land in the first few ms; later ones must not.
    const windows = a.received!.filter((r) => r.status === 429).map((r) => [r.at + 5 + 50, r.at + 1000] as const);
    let inWindow = 0;
    let otherInWindow = 0;
    for (const [from, to] of windows) {
      inWindow += a.received!.filter((r) => r.at >= from && r.at < to).length;
      otherInWindow += b.received!.filter((r) => r.at >= from && r.at < to).length;
    }
    console.log(`Retry-After: ${windows.length} pauses; calls to the paused connection inside them: ${inWindow}; to the other: ${otherInWindow}`);
    expect(inWindow).toBe(0);
    expect(otherInWindow).toBeGreaterThan(0);
  });

  it('serves a small campaign enqueued after a big one within a few of the big one\'s jobs', async () => {
    const s = await sandbox({ latencyMs: 5 });
    const big = skewedFleet(3000, 1, 'wf-1');
    const small = { targets: Array.from({ length: 10 }, (_, i) => ({ userId: `small-${i}` })) };
    s.load(big.fixtures);
    s.load({ alloy: { workflows: { 'wf-2': { latestVersion: 2 } }, installs: small.targets.map((t) => ({ workflowId: 'wf-2', userId: t.userId, version: 1 })) } });
    const concurrency = 5;
    await work({ concurrency });
    const bigRes = await enqueueCampaign(alloySpec('big', s), big.targets, t.producer);
    await s.requestsReached(200);
    const from = s.received!.length;
    const smallRes = await enqueueCampaign(
      { ...alloySpec('small', s), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-2' } },
      small.targets,
      t.producer,
    );
    await waitForCompletion(t.prefix, smallRes.campaignId);
    const after = s.received!.slice(from);
    const lastSmall = after.findLastIndex((r) => r.path.includes('/wf-2/'));
    const bigBefore = after.slice(0, lastSmall).filter((r) => r.path.includes('/wf-1/')).length;
    console.log(`fairness: ${bigBefore} big-campaign calls before the small campaign's last (concurrency ${concurrency})`);
    // Round robin: the small campaign alternates with the big one after the window in flight.
    expect(bigBefore).toBeLessThanOrEqual(small.targets.length + 2 * concurrency);
    expect((await waitForCompletion(t.prefix, bigRes.campaignId)).upgraded).toBe(3000);
  });

  it('returns a SIGKILLed worker\'s slot after its lease, not before', async () => {
    const leaseMs = 2000;
    const s = await sandbox({ latencyMs: 300 });
    const fleet = skewedFleet(8, 1);
    s.load(fleet.fixtures);
    const { campaignId } = await enqueueCampaign(alloySpec('lease', s, { limits: [{ key: 'solo', concurrency: 1 }] }), fleet.targets, t.producer);
    const doomed = await t.spawnWorker(['--concurrency', '4', '--lease-ms', String(leaseMs), '--lock-duration-ms', '1000', '--stalled-interval-ms', '500']);
    await s.requestsReached(2);
    // The second target is now in flight on the doomed worker, holding the only slot.
    const killedAt = Date.now();
    doomed.proc.kill('SIGKILL');
    await doomed.exited;
    await t.spawnWorker(['--concurrency', '4', '--lease-ms', String(leaseMs)]);
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status).toMatchObject({ upgraded: 8, failed: 0, pending: 0, active: 0 });
    expect(status.reclaimed).toBeGreaterThanOrEqual(1);
    const next = s.received!.find((r) => r.at > killedAt)!;
    const gap = next.at - killedAt;
    console.log(`lease: slot of the killed worker came back after ${gap} ms (lease ${leaseMs} ms)`);
    // Renewed at most a third of the lease before the kill, so it cannot have freed sooner.
    expect(gap).toBeGreaterThanOrEqual((leaseMs * 2) / 3 - 50);
    expect(gap).toBeLessThan(leaseMs + 1000);
    expect(s.stats().maxInFlight).toBe(1);
  });
});
