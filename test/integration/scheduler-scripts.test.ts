import type { Redis } from 'ioredis';
import { beforeEach, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { campaignKeys, eventsChannel, readStatus, schedulerKeys, type Scripts } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { testConnections } from '../support/connections.js';

/**
 * The scheduler's scripts driven directly, step by step, with no worker: what a dispatch step
 * picks, what a release wakes, what a lease expiry and a pause do.
 */
describe('scheduler scripts', () => {
  let redis: Redis;
  let prefix: string;
  let scripts: Scripts;
  const LEASE = 60_000;
  // Two connections: the same variable at two origins (a Retry-After pauses one of them).
  const connections = testConnections('http://127.0.0.1:1', 'http://127.0.0.1:2');
  // A worker of concurrency 100 opens the window.
  const t = setupDeployment({ standIn: { leaseMs: LEASE, concurrency: 100 } });
  // The tests below read the deployment's parts under these names.
  beforeEach(() => {
    ({ redis, prefix, scripts } = t);
  });

  const spec = (id: string, limits: unknown[] = []) => ({
    id,
    connection: { baseUrl: 'http://127.0.0.1:1', credentialRef: 'K' },
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' },
    limits,
  });
  const users = (n: number, extra: (i: number) => Record<string, string> = () => ({})) =>
    Array.from({ length: n }, (_, i) => ({ userId: `u${i}`, ...extra(i) }));
  const ids = (picks: { entry: string }[]) => picks.map((p) => (JSON.parse(p.entry) as { userId: string }).userId);
  const finish = (holder: string, token: string, campaignId: string, targetKey: string) =>
    scripts.finish({
      holder,
      token,
      campaignId,
      targetKey,
      outcome: 'upgraded',
      reason: 'UPGRADED',
      recordJson: '{}',
      channel: eventsChannel(prefix),
      maxPicks: 100,
      leaseMs: LEASE,
    });

  it('picks no more than a key allows, and the next one only when a slot frees', async () => {
    await enqueueCampaign(spec('c1', [{ key: 'k', concurrency: 2 }]), users(5), { redis, prefix, connections });
    const first = await scripts.dispatch(100, LEASE);
    expect(ids(first.picks)).toEqual(['u0', 'u1']);
    expect(await scripts.dispatch(100, LEASE)).toMatchObject({ picks: [] });
    expect(await readStatus(redis, prefix, 'c1')).toMatchObject({ pending: 3, active: 2 });

    const claim = await scripts.claim(first.picks[0]!.holder, 'run-1', LEASE, 'u0', eventsChannel(prefix));
    expect(claim).toMatchObject({ kind: 'claimed', attemptsMade: 0 });
    const next = await finish(first.picks[0]!.holder, 'run-1', 'c1', 'u0');
    expect(next.recorded).toBe(true);
    expect(ids(next.picks)).toEqual(['u2']); // the freed slot went to the next target, in the same call
    expect(await redis.zcard(schedulerKeys(prefix).slot('K/k'))).toBe(2); // the key value, scoped to connection K
    expect(await readStatus(redis, prefix, 'c1')).toMatchObject({ pending: 2, active: 2, upgraded: 1 });
  });

  it('claims the next pick for the finishing worker in the same call, unless it has an outcome', async () => {
    await enqueueCampaign(spec('cont', [{ key: 'k', concurrency: 1 }]), users(3), { redis, prefix, connections });
    const [first] = (await scripts.dispatch(100, LEASE)).picks;
    await scripts.claim(first!.holder, 'run-1', LEASE, 'u0', eventsChannel(prefix));
    const next = await scripts.finish({
      holder: first!.holder, token: 'run-1', campaignId: 'cont', targetKey: 'u0', outcome: 'upgraded', reason: 'UPGRADED',
      recordJson: '{}', channel: eventsChannel(prefix), maxPicks: 100, leaseMs: LEASE, nextToken: 'run-2',
    });
    expect(ids(next.picks)).toEqual(['u1']);
    expect(next.ownClaim).toEqual({ kind: 'claimed', attemptsMade: 0, retryAfterWaits: 0, lastError: null });
    // The pick is this run's now: a BullMQ delivery of it would be a duplicate.
    expect(await scripts.claim(next.picks[0]!.holder, 'other', LEASE, 'u1', eventsChannel(prefix))).toEqual({ kind: 'duplicate' });

    // u2 gets an outcome from elsewhere (a late run) before it is picked: the claim declines it.
    await redis.hset(campaignKeys(prefix, 'cont').outcomes, 'u2', '{}');
    const last = await scripts.finish({
      holder: next.picks[0]!.holder, token: 'run-2', campaignId: 'cont', targetKey: 'u1', outcome: 'upgraded', reason: 'UPGRADED',
      recordJson: '{}', channel: eventsChannel(prefix), maxPicks: 100, leaseMs: LEASE, nextToken: 'run-3',
    });
    expect(ids(last.picks)).toEqual(['u2']);
    expect(last.ownClaim).toEqual({ kind: 'done' });
    expect(await redis.zcard(schedulerKeys(prefix).slot('K/k'))).toBe(0);
    // Without a token nothing is claimed.
    expect((await finish('cont.99', 'x', 'cont', 'zz')).ownClaim).toBeUndefined();
  });

  it('keeps the counters exact when a group commit stops on an error: the runs recorded before it are counted', async () => {
    await enqueueCampaign(spec('err'), users(2), { redis, prefix, connections });
    const picks = (await scripts.dispatch(100, LEASE)).picks;
    for (const p of picks) await scripts.claim(p.holder, 'run', LEASE, ids([p])[0]!, eventsChannel(prefix));
    expect(await readStatus(redis, prefix, 'err')).toMatchObject({ pending: 0, active: 2 });
    const run = { token: 'run', campaignId: 'err', outcome: 'upgraded', reason: 'UPGRADED', recordJson: '{}' } as const;
    // The second run's holder has no number: recording it fails in Lua, after the first was recorded.
    await expect(
      scripts.finishMany([{ ...run, holder: picks[0]!.holder, targetKey: 'u0' }, { ...run, holder: 'err.x', targetKey: 'u1' }], eventsChannel(prefix), 100, LEASE),
    ).rejects.toThrow();
    // Redis kept the first run's record and release; its `active -1` (counted once per call at the
    // call's end, counters.lua) was written with them.
    expect(await readStatus(redis, prefix, 'err')).toMatchObject({ upgraded: 1, pending: 0, active: 1 });
    expect(await redis.hexists(schedulerKeys(prefix).inflight, picks[0]!.holder)).toBe(0);
  });

  it('round-robins campaigns: a small campaign after a big one is served next', async () => {
    await scripts.renew(LEASE, 'w1', 6, []);
    await enqueueCampaign(spec('big'), users(100), { redis, prefix, connections });
    const firstBig = await scripts.dispatch(2, LEASE);
    expect(firstBig.picks).toHaveLength(2);
    await enqueueCampaign(spec('small'), users(3), { redis, prefix, connections });
    const r = await scripts.dispatch(4, LEASE);
    expect(r.picks.map((p) => p.holder.split('.')[0])).toEqual(['big', 'small', 'big', 'small']);
  });

  it('does not let a full key hold up another key, and wakes a group whose second key frees', async () => {
    // Group A: keys (a, shared); group B: keys (b, shared). `shared` allows 1.
    const limits = [{ key: '${target.t}', concurrency: 5 }, { key: 'shared', concurrency: 1 }];
    await enqueueCampaign(spec('multi', limits), users(4, (i) => ({ t: i % 2 === 0 ? 'a' : 'b' })), { redis, prefix, connections });
    const one = await scripts.dispatch(100, LEASE);
    expect(ids(one.picks)).toEqual(['u0']);
    // Both groups had room on their own key but not on `shared`: they wait there, not in a loop.
    expect(await redis.lrange(`${prefix}:sched:waiting:K/shared`, 0, -1)).toEqual(['multi']);
    expect(await redis.lrange(`${prefix}:campaign:multi:w:K/shared`, 0, -1)).toEqual(['0', '1']);
    await scripts.claim(one.picks[0]!.holder, 'r', LEASE, 'u0', eventsChannel(prefix));
    const next = await finish(one.picks[0]!.holder, 'r', 'multi', 'u0');
    expect(next.picks).toHaveLength(1);
    expect(await redis.zcard(schedulerKeys(prefix).slot('K/shared'))).toBe(1);
  });

  it('reclaims an expired lease: the target goes back to the head of its group', async () => {
    await enqueueCampaign(spec('lease', [{ key: 'solo', concurrency: 1 }]), users(2), { redis, prefix, connections });
    const r = await scripts.dispatch(100, 50);
    expect(ids(r.picks)).toEqual(['u0']);
    expect(r.nextWakeMs).toBeGreaterThan(r.nowMs); // the lease expiry is the next thing due
    await new Promise((resolve) => setTimeout(resolve, r.nextWakeMs! - r.nowMs + 5));
    const again = await scripts.dispatch(100, LEASE);
    expect(again.reclaimed).toBe(1);
    expect(ids(again.picks)).toEqual(['u0']);
    // The old holder's job, delivered late, is declined.
    expect(await scripts.claim(r.picks[0]!.holder, 'late', LEASE, 'u0', eventsChannel(prefix))).toEqual({ kind: 'lost' });
    expect(await readStatus(redis, prefix, 'lease')).toMatchObject({ reclaimed: 1, pending: 1, active: 1 });
  });

  it('declines a second delivery while the first run holds the lease', async () => {
    await enqueueCampaign(spec('dup'), users(1), { redis, prefix, connections });
    const [pick] = (await scripts.dispatch(100, LEASE)).picks;
    expect(await scripts.claim(pick!.holder, 'first', LEASE, 'u0', eventsChannel(prefix))).toMatchObject({ kind: 'claimed' });
    expect(await scripts.claim(pick!.holder, 'second', LEASE, 'u0', eventsChannel(prefix))).toEqual({ kind: 'duplicate' });
    expect(await scripts.renew(LEASE, 'w1', 100, [[pick!.holder, 'second']])).toEqual([pick!.holder]);
    expect(await scripts.renew(LEASE, 'w1', 100, [[pick!.holder, 'first']])).toEqual([]);
  });

  it('a Retry-After pauses the connection for every campaign on it, without using an attempt', async () => {
    await enqueueCampaign(spec('p1'), users(3), { redis, prefix, connections });
    await enqueueCampaign(spec('p2'), users(3), { redis, prefix, connections });
    const other = { ...spec('p3'), connection: { baseUrl: 'http://127.0.0.1:2', credentialRef: 'K' } };
    await enqueueCampaign(other, users(3), { redis, prefix, connections });
    await scripts.renew(LEASE, 'w1', 1, []);
    const [pick] = (await scripts.dispatch(1, LEASE)).picks;
    await scripts.claim(pick!.holder, 'r', LEASE, 'u0', eventsChannel(prefix));
    const until = await scripts.throttle(pick!.holder, 'r', 'u0', 5000, 'THROTTLED: 429', eventsChannel(prefix));
    expect(until).toBeGreaterThan(Date.now() + 4000);
    await scripts.renew(LEASE, 'w1', 100, []);
    const r = await scripts.dispatch(100, LEASE);
    // Only the other connection's campaign runs; p1 and p2 wait until the pause ends.
    expect(new Set(r.picks.map((p) => p.holder.split('.')[0]))).toEqual(new Set(['p3']));
    expect(r.nextWakeMs).toBeGreaterThanOrEqual(until!);
    expect(await readStatus(redis, prefix, 'p1')).toMatchObject({ retryAfterWaits: 1, retryAfterWaitMs: 5000, retries: 0, pending: 3, active: 0 });
    expect(await redis.hget(`${prefix}:campaign:p1:attempts`, 'u0')).toBeNull();
    // pauseOf, which a worker asks before a call when its last word is stale, says the same on Redis's clock.
    const paused = await scripts.pauseOf('http://127.0.0.1:1#K');
    expect(paused.untilMs).toBe(until);
    expect(paused.untilMs - paused.nowMs).toBeGreaterThan(4000);
    expect((await scripts.pauseOf('http://127.0.0.1:2#K')).untilMs).toBe(0);
  });

  it('parks a retried target without holding its slot', async () => {
    await enqueueCampaign(spec('retry', [{ key: 'one', concurrency: 1 }]), users(2), { redis, prefix, connections });
    const [pick] = (await scripts.dispatch(100, LEASE)).picks;
    await scripts.claim(pick!.holder, 'r', LEASE, 'u0', eventsChannel(prefix));
    expect(await scripts.retryLater(pick!.holder, 'r', 'u0', 60_000, 'SERVER_ERROR: 500')).toBe(true);
    const r = await scripts.dispatch(100, LEASE);
    expect(ids(r.picks)).toEqual(['u1']); // the slot went to the next target during the backoff
    expect(await readStatus(redis, prefix, 'retry')).toMatchObject({ retries: 1, pending: 1, active: 1 });
    const claim = await scripts.claim(r.picks[0]!.holder, 'r2', LEASE, 'u1', eventsChannel(prefix));
    expect(claim).toMatchObject({ kind: 'claimed', attemptsMade: 0 });
  });

  it('spaces a rated key evenly and says when the next start is due', async () => {
    await enqueueCampaign(spec('rate', [{ key: 'r', rate: { max: 10, perMs: 1000 } }]), users(5), { redis, prefix, connections });
    const r = await scripts.dispatch(100, LEASE);
    expect(r.picks).toHaveLength(1);
    expect(r.nextWakeMs! - r.nowMs).toBeGreaterThanOrEqual(99);
    expect(r.nextWakeMs! - r.nowMs).toBeLessThanOrEqual(101);
  });

  it('keeps the window: no more targets held than registered workers can run', async () => {
    await scripts.renew(LEASE, 'w1', 3, []);
    await enqueueCampaign(spec('win'), users(10), { redis, prefix, connections });
    expect((await scripts.dispatch(100, LEASE)).picks).toHaveLength(3);
    expect((await scripts.dispatch(100, LEASE)).picks).toHaveLength(0);
    await scripts.renew(LEASE, 'w1', 0, []); // the worker leaves
    await scripts.renew(LEASE, 'w2', 5, []);
    expect((await scripts.dispatch(100, LEASE)).picks).toHaveLength(2);
  });
});
