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
    expect(err).toMatchObject({ code: 'STATUS_GONE', script: 'finish' });
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
});
