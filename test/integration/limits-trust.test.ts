import { beforeAll, describe, expect, it } from 'vitest';
import { sandboxConnections } from '../../scripts/lib/connections.js';
import { enqueueCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS } from '../../src/sandbox/index.js';
import { eventsChannel, parseConnections, readStatus, schedulerKeys, type ConnectionRegistry, type Pick } from '../../src/shared/index.js';
import { readLimitUsage } from '../../src/producer/api/limits.js';
import { setupDeployment } from '../support/deployment.js';
import { setCredentialEnv } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

/**
 * Limits that no campaign can abuse: a campaign's own limit keys are scoped to its connection,
 * one key value has one capacity (the smallest figure among the live campaigns using it, or the
 * registry's), and a slot that frees on a key several campaigns wait on goes round robin.
 */

const SECOND_REF = 'UPSHIFT_TEST_ALLOY_KEY_B';

/** The registry, with the registry's own limits on every entry when given. */
function registry(baseUrl: string, refs: readonly string[], limits?: unknown[]): ConnectionRegistry {
  const plain = sandboxConnections(baseUrl, refs);
  if (!limits) return plain;
  const connections = Object.fromEntries(Object.entries(plain.connections).map(([name, e]) => [name, { ...e, limits }]));
  return parseConnections({ connections });
}

const alloy = (id: string, connection: unknown, extra: Record<string, unknown> = {}) => ({
  id,
  connection,
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
  ...extra,
});
const users = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ userId: `${prefix}-${i}` }));

describe('limits against the sandbox', () => {
  const t = setupDeployment({ credentials: true });

  beforeAll(() => {
    process.env[SECOND_REF] = SANDBOX_KEYS.alloy;
  });

  const work = (connections: ConnectionRegistry, concurrency: number) => t.startWorker({ concurrency, connections });
  const installs = (...ids: string[]) => ({
    alloy: { workflows: { 'wf-1': { latestVersion: 2 } }, installs: ids.map((userId) => ({ workflowId: 'wf-1', userId, version: 1 })) },
  });

  it('campaign H (concurrency 100000, hanging targets) cannot run key tenant-acme past campaign V\'s 3; V completes on its round-robin share while H retries', async () => {
    // Every answer takes 200 ms: H's calls time out at 100 ms (and retry at once), V's succeed.
    const sandbox = await t.startSandbox({ latencyMs: 200, limitKeyPattern: '^alloy:[^:]+:(acme)-' });
    const hIds = users('acme-h', 3);
    const vIds = users('acme-v', 20);
    sandbox.load(installs(...[...hIds, ...vIds].map((u) => u.userId)));
    const connections = registry(sandbox.url, ['UPSHIFT_TEST_ALLOY_KEY']);

    await enqueueCampaign(
      alloy('h', { name: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 100 }, {
        limits: [{ key: 'tenant-acme', concurrency: 100_000 }],
        retry: { attempts: 100, backoffMs: 0 },
      }),
      hIds,
      { redis: t.redis, prefix: t.prefix, connections },
    );
    await enqueueCampaign(
      alloy('v', { name: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 10_000 }, { limits: [{ key: 'tenant-acme', concurrency: 3 }], retry: { attempts: 3, backoffMs: 10 } }),
      vIds,
      { redis: t.redis, prefix: t.prefix, connections },
    );
    await work(connections, 10);

    const v = await waitForCompletion(t.prefix, 'v', 60_000);
    const h = (await readStatus(t.redis, t.prefix, 'h'))!;
    expect(v).toMatchObject({ state: 'completed', upgraded: 20, failed: 0 });
    // H is still at it: nothing recorded, attempts made meanwhile (it was served too).
    expect(h).toMatchObject({ state: 'running', upgraded: 0, failed: 0 });
    expect(h.retries).toBeGreaterThanOrEqual(3);
    // The platform never saw more than V's 3 on the key, and the key's capacity was used.
    expect(sandbox.stats().maxInFlightByKey).toEqual({ acme: 3 });
  });

  it('a campaign limit key is the connection\'s own: the same literal on two connections is two keys', async () => {
    const sandbox = await t.startSandbox({ latencyMs: 300, limitKeyPattern: '^alloy:[^:]+:(k)-' });
    const a = users('k-a', 3);
    const b = users('k-b', 3);
    sandbox.load(installs(...[...a, ...b].map((u) => u.userId)));
    const connections = registry(sandbox.url, ['UPSHIFT_TEST_ALLOY_KEY', SECOND_REF]);
    const limits = [{ key: 'k', concurrency: 1 }];
    await enqueueCampaign(alloy('on-a', 'UPSHIFT_TEST_ALLOY_KEY', { limits }), a, { redis: t.redis, prefix: t.prefix, connections });
    await enqueueCampaign(alloy('on-b', SECOND_REF, { limits }), b, { redis: t.redis, prefix: t.prefix, connections });
    await work(connections, 10);
    await waitForCompletion(t.prefix, 'on-a');
    await waitForCompletion(t.prefix, 'on-b');
    // One at a time per connection, both connections at once.
    expect(sandbox.stats().maxInFlightByKey).toEqual({ k: 2 });
  });

  it('a key the registry declares on two connections is one key: both connections together stay at its figure', async () => {
    const sandbox = await t.startSandbox({ latencyMs: 300, limitKeyPattern: '^alloy:[^:]+:(e)-' });
    const c = users('e-c', 4);
    const d = users('e-d', 4);
    sandbox.load(installs(...[...c, ...d].map((u) => u.userId)));
    const connections = registry(sandbox.url, ['UPSHIFT_TEST_ALLOY_KEY', SECOND_REF], [{ key: 'edge', concurrency: 2 }]);
    // One campaign names the registry's key with a higher figure: it is clipped, not scoped.
    await enqueueCampaign(alloy('on-c', 'UPSHIFT_TEST_ALLOY_KEY', { limits: [{ key: 'edge', concurrency: 50 }] }), c, { redis: t.redis, prefix: t.prefix, connections });
    await enqueueCampaign(alloy('on-d', SECOND_REF), d, { redis: t.redis, prefix: t.prefix, connections });
    await work(connections, 10);
    await waitForCompletion(t.prefix, 'on-c');
    await waitForCompletion(t.prefix, 'on-d');
    expect(sandbox.stats().maxInFlightByKey).toEqual({ e: 2 });
  });
});

/** The same rules driven through the scripts step by step, with no worker. */
describe('limit keys in the scheduler scripts', () => {
  const LEASE = 60_000;
  const connections = registry('http://127.0.0.1:1', ['K', 'K2']);
  const t = setupDeployment({ standIn: { leaseMs: LEASE, concurrency: 100 } });

  const enqueue = (id: string, conn: string, limits: unknown[], targets: unknown[], reg = connections) =>
    enqueueCampaign({ id, connection: conn, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' }, limits }, targets, { redis: t.redis, prefix: t.prefix, connections: reg });
  const campaignOf = (p: Pick) => p.holder.split('.')[0]!;
  const userOf = (p: Pick) => (JSON.parse(p.entry) as { userId: string }).userId;
  /** Runs a pick to its end (claim, then finish, which dispatches next): returns the next picks. */
  const complete = async (p: Pick) => {
    await t.scripts.claim(p.holder, 'run', LEASE, userOf(p), eventsChannel(t.prefix));
    return (
      await t.scripts.finish({
        holder: p.holder, token: 'run', campaignId: campaignOf(p), targetKey: userOf(p), outcome: 'upgraded', reason: 'UPGRADED',
        recordJson: '{}', channel: eventsChannel(t.prefix), maxPicks: 100, leaseMs: LEASE,
      })
    ).picks;
  };
  const slotKeys = async () => (await t.redis.keys(`${t.prefix}:sched:slot:*`)).map((k) => k.slice(`${t.prefix}:sched:slot:`.length)).sort();

  it('scopes a campaign\'s own key values to its connection; registry keys stay as declared', async () => {
    const reg = registry('http://127.0.0.1:1', ['K', 'K2'], [{ key: 'edge', concurrency: 9 }, { key: 'eu/${target.t}', concurrency: 9 }]);
    await enqueue('s1', 'K', [{ key: 'tenant-${target.t}', concurrency: 5 }], [{ userId: 'u0', t: 'x/y' }], reg);
    await enqueue('s2', 'K2', [{ key: 'tenant-${target.t}', concurrency: 5 }], [{ userId: 'u0', t: 'x/y' }], reg);
    expect((await t.scripts.dispatch(100, LEASE)).picks).toHaveLength(2);
    // `<connection>/<value>` for a campaign's own key; a registry value that would read like
    // one gets a leading '/', so the two can never meet.
    expect(await slotKeys()).toEqual(['/eu/x/y', 'K/tenant-x/y', 'K2/tenant-x/y', 'edge']);
  });

  it('holds a key to the smallest figure among live campaigns; an ended campaign\'s figure stops counting', async () => {
    await enqueue('big', 'K', [{ key: 'k', concurrency: 5 }], Array.from({ length: 8 }, (_, i) => ({ userId: `b${i}` })));
    await enqueue('small', 'K', [{ key: 'k', concurrency: 1 }], [{ userId: 's0' }, { userId: 's1' }]);
    let picks = (await t.scripts.dispatch(100, LEASE)).picks;
    const seen: string[] = [];
    // While `small` lives, the key holds one target at a time, whichever campaign it is.
    while ((await readStatus(t.redis, t.prefix, 'small'))!.state !== 'completed') {
      expect(picks).toHaveLength(1);
      expect(await t.redis.zcard(schedulerKeys(t.prefix).slot('K/k'))).toBe(1);
      seen.push(campaignOf(picks[0]!));
      picks = await complete(picks[0]!);
    }
    expect(seen).toContain('big');
    // `small` ended in the finish that freed its last slot: `big` now runs at its own 5.
    expect(picks.length + (await t.scripts.dispatch(100, LEASE)).picks.length).toBe(5);
    expect(await t.redis.zcard(schedulerKeys(t.prefix).slot('K/k'))).toBe(5);
  });

  it('the limits the API reports show the key\'s one capacity, not the campaign\'s own larger figure', async () => {
    await enqueue('greedy', 'K', [{ key: 'k', concurrency: 100000 }], [{ userId: 'g0' }]);
    await enqueue('modest', 'K', [{ key: 'k', concurrency: 3 }], [{ userId: 'm0' }]);
    const usage = await readLimitUsage(t.redis, t.prefix, 'greedy');
    expect(usage!.keys).toEqual([{ key: 'K/k', inUse: 0, concurrency: 3, atCapacity: false }]);
  });

  it('spaces a key\'s starts by the slowest rate among live campaigns, whatever the others declare', async () => {
    await enqueue('slow', 'K', [{ key: 'k', rate: { max: 1, perMs: 60_000 } }], [{ userId: 's0' }]);
    await enqueue('fast', 'K', [{ key: 'k', concurrency: 10 }], Array.from({ length: 5 }, (_, i) => ({ userId: `f${i}` })));
    const r = await t.scripts.dispatch(100, LEASE);
    expect(r.picks).toHaveLength(1);
    expect(r.nextWakeMs! - r.nowMs).toBeGreaterThan(55_000);
    expect((await t.scripts.dispatch(100, LEASE)).picks).toHaveLength(0);
  });

  it('a campaign lowering a registry key\'s rate slows only itself: the key keeps the registry\'s spacing for others', async () => {
    const reg = registry('http://127.0.0.1:1', ['K', 'K2'], [{ key: 'edge', rate: { max: 10, perMs: 1000 } }]);
    await enqueue('slowpoke', 'K', [{ key: 'edge', rate: { max: 1, perMs: 60_000 } }], [{ userId: 's0' }, { userId: 's1' }], reg);
    await enqueue('normal', 'K2', [], [{ userId: 'n0' }, { userId: 'n1' }], reg);
    const r = await t.scripts.dispatch(100, LEASE);
    expect(r.picks.map(campaignOf)).toEqual(['slowpoke']);
    const due = async (c: string) => Number(await t.redis.zscore(`${t.prefix}:sched:delayed`, `${c}|0`)) - r.nowMs;
    expect(await due('normal')).toBeLessThanOrEqual(101); // the registry's 100 ms
    expect(await due('slowpoke')).toBeGreaterThan(59_000); // its own minute
  });

  it('counts a campaign again when an operator retries it after it ended', async () => {
    const cap = `${t.prefix}:sched:cap:K/k`;
    await enqueue('big', 'K', [{ key: 'k', concurrency: 5 }], Array.from({ length: 8 }, (_, i) => ({ userId: `b${i}` })));
    await enqueue('small', 'K', [{ key: 'k', concurrency: 1 }], [{ userId: 's0' }]);
    let [pick] = (await t.scripts.dispatch(100, LEASE)).picks;
    while (campaignOf(pick!) !== 'small') [pick] = await complete(pick!);
    await t.scripts.claim(pick!.holder, 'run', LEASE, 's0', eventsChannel(t.prefix));
    const done = await t.scripts.finish({
      holder: pick!.holder, token: 'run', campaignId: 'small', targetKey: 's0', outcome: 'failed', reason: 'SERVER_ERROR',
      recordJson: '{}', channel: eventsChannel(t.prefix), maxPicks: 100, leaseMs: LEASE,
    });
    expect(done.picks).toHaveLength(5);
    expect(await t.redis.hget(cap, '=c')).toBe('5');
    expect(await t.scripts.retryFailed('small', '', eventsChannel(t.prefix), ['s0', 0, JSON.stringify({ userId: 's0' })])).toBe(1);
    expect(await t.redis.hget(cap, '=c')).toBe('1');
    // Five are held on a key of capacity 1 again: nothing starts until they are all done.
    expect((await t.scripts.dispatch(100, LEASE)).picks).toHaveLength(0);
  });

  it('counts the groups a discovery adds page by page', async () => {
    setCredentialEnv();
    const sandbox = await t.startSandbox();
    sandbox.load({
      conductor: {
        definitions: [1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })),
        executions: [
          ...Array.from({ length: 5 }, (_, i) => ({ workflowId: `x-${i}`, workflowName: 'flow', workflowVersion: 1, status: 'RUNNING' as const })),
          ...Array.from({ length: 5 }, (_, i) => ({ workflowId: `y-${i}`, workflowName: 'other', workflowVersion: 1, status: 'RUNNING' as const })),
        ],
      },
    });
    const reg = registry(sandbox.url, ['UPSHIFT_TEST_CONDUCTOR_KEY']);
    const conductor = (id: string, limits: unknown[], extra: Record<string, unknown>) => ({
      id, connection: 'UPSHIFT_TEST_CONDUCTOR_KEY', operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 }, limits, ...extra,
    });
    await enqueueCampaign(conductor('wide', [{ key: 'k', concurrency: 7 }], {}), Array.from({ length: 5 }, (_, i) => ({ workflowId: `y-${i}` })), {
      redis: t.redis, prefix: t.prefix, connections: reg,
    });
    const found = await enqueueCampaign(
      conductor('found', [{ key: 'k', concurrency: 2 }, { key: 'e-${target.workflowId}', concurrency: 1 }], {
        targets: { discover: { workflowName: 'flow', version: 1, pageSize: 2 } },
      }),
      undefined,
      { redis: t.redis, prefix: t.prefix, connections: reg },
    );
    expect(found.total).toBe(5);
    const cap = (key: string) => `${t.prefix}:sched:cap:UPSHIFT_TEST_CONDUCTOR_KEY/${key}`;
    expect(await t.redis.hgetall(cap('k'))).toEqual({ wide: '7|0', found: '2|0', '=c': '2' });
    // The last page's group too.
    expect(await t.redis.hget(cap('e-x-4'), 'found')).toBe('1|0');
    expect((await t.scripts.dispatch(100, LEASE)).picks).toHaveLength(2);
  });

  it('gives a freed slot round robin to the campaigns waiting on the key, however many groups each has', async () => {
    // `multi` has three groups on k (one per tenant), `solo` and `third` one each.
    const tenants = Array.from({ length: 9 }, (_, i) => ({ userId: `m${i}`, t: `t${i % 3}` }));
    await enqueue('multi', 'K', [{ key: 'k', concurrency: 1 }, { key: '${target.t}', concurrency: 5 }], tenants);
    let picks = (await t.scripts.dispatch(100, LEASE)).picks;
    await enqueue('solo', 'K', [{ key: 'k', concurrency: 1 }], Array.from({ length: 4 }, (_, i) => ({ userId: `s${i}` })));
    await enqueue('third', 'K', [{ key: 'k', concurrency: 1 }], Array.from({ length: 4 }, (_, i) => ({ userId: `x${i}` })));
    expect((await t.scripts.dispatch(100, LEASE)).picks).toHaveLength(0);
    const order = [campaignOf(picks[0]!)];
    for (let i = 0; i < 9; i++) {
      expect(picks).toHaveLength(1);
      picks = await complete(picks[0]!);
      order.push(campaignOf(picks[0]!));
    }
    expect(order).toEqual(['multi', 'multi', 'solo', 'third', 'multi', 'solo', 'third', 'multi', 'solo', 'third']);
  });
});
