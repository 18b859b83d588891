import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { campaignKeys, eventsChannel, loadScripts, readStatus, schedulerKeys, ScriptError } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { testConnections } from '../support/connections.js';

/**
 * The scripts' edges driven directly, with no worker: a finish after the campaign's status hash
 * is gone, the conflicts count a finish carries, the symbolic codes of refusals, and a campaign
 * written before its meta had a key of its own.
 */
describe('scheduler scripts: edges', () => {
  const ctx = setupDeployment();
  const LEASE = 60_000;
  const connections = testConnections('http://127.0.0.1:1');
  const spec = (id: string) => ({
    id,
    connection: { baseUrl: 'http://127.0.0.1:1', credentialRef: 'K' },
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' },
    limits: [{ key: 'k', concurrency: 1 }],
  });
  const users = (n: number) => Array.from({ length: n }, (_, i) => ({ userId: `u${i}` }));

  /** A campaign of `n` targets, its first target dispatched and claimed. */
  async function started(id: string, n = 1) {
    const { redis, prefix } = ctx;
    const scripts = loadScripts(redis, prefix);
    await scripts.renew(LEASE, 'w1', 10, []);
    await enqueueCampaign(spec(id), users(n), { redis, prefix, connections });
    const [pick] = (await scripts.dispatch(10, LEASE)).picks;
    const claim = await scripts.claim(pick!.holder, 'run-1', LEASE, 'u0', eventsChannel(prefix));
    expect(claim.kind).toBe('claimed');
    return { scripts, holder: pick!.holder };
  }
  const finishArgs = (holder: string, campaignId: string, targetKey: string) => ({
    holder,
    token: 'run-1',
    campaignId,
    targetKey,
    outcome: 'upgraded' as const,
    reason: 'UPGRADED' as const,
    recordJson: '{}',
    channel: eventsChannel(ctx.prefix),
    maxPicks: 10,
    leaseMs: LEASE,
  });

  it('a finish after the status hash is gone releases the slots, returns STATUS_GONE and does not bring the hash back', async () => {
    const { redis, prefix } = ctx;
    const { scripts, holder } = await started('gone');
    const keys = campaignKeys(prefix, 'gone');
    await redis.del(keys.status);

    const err = await scripts.finish(finishArgs(holder, 'gone', 'u0')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScriptError);
    expect(err).toMatchObject({ code: 'STATUS_GONE', script: 'finishMany' });
    expect(await redis.exists(keys.status)).toBe(0);
    expect(await redis.hexists(schedulerKeys(prefix).inflight, holder)).toBe(0);
    expect(await redis.zcard(schedulerKeys(prefix).slot('K/k'))).toBe(0);
  });

  it("counts a run's conflicts in the status hash in the finish step", async () => {
    const { redis, prefix } = ctx;
    const { scripts, holder } = await started('conf', 2);
    const next = await scripts.finish({ ...finishArgs(holder, 'conf', 'u0'), conflicts: 3 });
    expect(next.recorded).toBe(true);
    expect(await readStatus(redis, prefix, 'conf')).toMatchObject({ conflicts: 3, upgraded: 1 });

    // Without the argument nothing is added.
    const [pick] = next.picks;
    await scripts.claim(pick!.holder, 'run-1', LEASE, 'u1', eventsChannel(prefix));
    await scripts.finish(finishArgs(pick!.holder, 'conf', 'u1'));
    expect(await readStatus(redis, prefix, 'conf')).toMatchObject({ conflicts: 3, upgraded: 2, state: 'completed' });
  });

  it("counts a retried or throttled attempt's conflicts in the same step that parks it", async () => {
    const { redis, prefix } = ctx;
    const { scripts, holder } = await started('conf-retry');
    expect(await scripts.retryLater(holder, 'run-1', 'u0', 0, 'e', 2)).toBe(true);
    expect(await readStatus(redis, prefix, 'conf-retry')).toMatchObject({ conflicts: 2, retries: 1 });

    const [pick] = (await scripts.dispatch(10, LEASE)).picks;
    await scripts.claim(pick!.holder, 'run-2', LEASE, 'u0', eventsChannel(prefix));
    expect(await scripts.throttle(pick!.holder, 'run-2', 'u0', 1000, 'e', eventsChannel(prefix), 5)).not.toBeNull();
    expect(await readStatus(redis, prefix, 'conf-retry')).toMatchObject({ conflicts: 7, retryAfterWaits: 1 });
  });

  it('refuses by name: NO_SUCH_CAMPAIGN, WRONG_STATE', async () => {
    const { redis, prefix } = ctx;
    const scripts = loadScripts(redis, prefix);
    await expect(scripts.control('nope', 'pause', '', eventsChannel(prefix))).rejects.toMatchObject({ code: 'NO_SUCH_CAMPAIGN', returnCode: -1 });
    await enqueueCampaign(spec('run'), users(1), { redis, prefix, connections });
    await expect(scripts.cancelPending('run', 10, eventsChannel(prefix))).rejects.toMatchObject({ code: 'WRONG_STATE' });
    // Not a refusal: the answer says the state forbids it.
    expect(await scripts.control('run', 'promote', '', eventsChannel(prefix))).toEqual({ changed: false, state: 'running' });
  });

  it('keeps new meta out of the groups hash', async () => {
    const { redis, prefix } = ctx;
    await started('split', 2);
    const keys = campaignKeys(prefix, 'split');
    expect(Object.keys(await redis.hgetall(keys.groups)).every((f) => /^\d+$/.test(f))).toBe(true);
    expect(await redis.hgetall(keys.meta)).toMatchObject({ conn: expect.any(String), tk: expect.any(String), capgid: '1', seq: '1' });
  });

  it('runs a campaign written before :meta existed (its meta in :groups) from where it was', async () => {
    const { redis, prefix } = ctx;
    const scripts = loadScripts(redis, prefix);
    await scripts.renew(LEASE, 'w1', 10, []);
    await enqueueCampaign(spec('old'), users(3), { redis, prefix, connections });
    const keys = campaignKeys(prefix, 'old');
    // The earlier layout: meta fields beside the group entries, the holder counter well along.
    const meta = await redis.hgetall(keys.meta);
    await redis.del(keys.meta);
    await redis.hset(keys.groups, { ...meta, seq: 41, retentionMs: 60_000 });

    let picks = (await scripts.dispatch(10, LEASE)).picks;
    expect(picks.map((p) => p.holder)).toEqual(['old.42']);
    for (let i = 0; picks.length > 0; i++) {
      const holder = picks[0]!.holder;
      expect(await scripts.claim(holder, 'run-1', LEASE, `u${i}`, eventsChannel(prefix))).toMatchObject({ kind: 'claimed' });
      const next = await scripts.finish({ ...finishArgs(holder, 'old', `u${i}`) });
      expect(next.seq).toBe(42 + i);
      picks = next.picks;
    }
    expect(await readStatus(redis, prefix, 'old')).toMatchObject({ state: 'completed', upgraded: 3 });
    expect(await redis.hget(keys.groups, 'seq')).toBe('44');
    expect(await redis.exists(keys.meta)).toBe(0);
    // The retention read from :groups: the campaign's keys expire.
    expect(await redis.pttl(keys.groups)).toBeGreaterThan(0);
    expect(await redis.pttl(keys.status)).toBeGreaterThan(0);
  });

  it('finishMany records each run once, frees only its own slots, and claims the picks for the runs that ask, in order', async () => {
    const { redis, prefix } = ctx;
    const scripts = loadScripts(redis, prefix);
    const channel = eventsChannel(prefix);
    await scripts.renew(LEASE, 'w1', 10, []);
    await enqueueCampaign({ ...spec('many'), limits: [{ key: 'k', concurrency: 3 }] }, users(6), { redis, prefix, connections });
    await enqueueCampaign({ ...spec('many-gone'), limits: [{ key: 'g', concurrency: 1 }] }, users(1), { redis, prefix, connections });
    const picks = (await scripts.dispatch(10, LEASE)).picks;
    const mine = picks.filter((p) => p.holder.startsWith('many.'));
    const gone = picks.find((p) => p.holder.startsWith('many-gone.'))!;
    expect(mine).toHaveLength(3);
    for (const [i, p] of mine.entries()) expect((await scripts.claim(p.holder, `t${i}`, LEASE, `u${i}`, channel)).kind).toBe('claimed');
    await scripts.claim(gone.holder, 'tg', LEASE, 'u0', channel);
    await redis.del(campaignKeys(prefix, 'many-gone').status);
    const run = (i: number, over: object = {}) => ({ holder: mine[i]!.holder, token: `t${i}`, campaignId: 'many', targetKey: `u${i}`, outcome: 'upgraded' as const, reason: 'UPGRADED' as const, recordJson: `{"n":${i}}`, ...over });

    const step = await scripts.finishMany(
      [
        run(0, { nextToken: 'n0' }),
        run(1),
        // A run whose lease was lost: recorded (its call happened), its slot not released.
        run(2, { token: 'stale', nextToken: 'n2' }),
        { ...run(0), holder: gone.holder, token: 'tg', campaignId: 'many-gone' },
      ],
      channel,
      10,
      LEASE,
    );
    expect(step.runs.map((r) => ('error' in r ? r.error.code : r.recorded))).toEqual([true, true, true, 'STATUS_GONE']);
    const [r0, r1, r2] = step.runs as Extract<(typeof step.runs)[number], { recorded: boolean }>[];
    // Two slots freed (runs 0 and 1): two picks, to the two runs that passed a token, claimed with it.
    expect(r0!.ownClaim).toMatchObject({ kind: 'claimed', attemptsMade: 0 });
    expect(r1!.own).toBeUndefined();
    expect(r2!.ownClaim).toMatchObject({ kind: 'claimed' });
    expect(step.picks).toEqual([]);
    const inflight = await redis.hgetall(schedulerKeys(prefix).inflight);
    expect(inflight[r0!.own!.holder]).toMatch(/\|n0\|/);
    expect(inflight[r2!.own!.holder]).toMatch(/\|n2\|/);
    expect(inflight[mine[2]!.holder]).toMatch(/\|t2\|/);
    expect(await redis.zcard(schedulerKeys(prefix).slot('K/k'))).toBe(3);
    expect(await readStatus(redis, prefix, 'many')).toMatchObject({ upgraded: 3, active: 3, pending: 1 });
    expect(await redis.hget(campaignKeys(prefix, 'many').outbox, String(r1!.seq))).toBe('{"n":1}\nu1');
    expect(await redis.exists(campaignKeys(prefix, 'many-gone').status)).toBe(0);

    // Recorded once: the same end again changes no counter.
    const again = await scripts.finishMany([run(1)], channel, 10, LEASE);
    expect(again.runs[0]).toMatchObject({ recorded: false, seq: 0 });
    expect(await readStatus(redis, prefix, 'many')).toMatchObject({ upgraded: 3, active: 3, pending: 1 });
  });
});
