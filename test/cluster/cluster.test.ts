import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import {
  campaignKeys,
  connectRedis,
  createLogger,
  createRedis,
  eventsChannel,
  InputError,
  loadConfig,
  readStatus,
  schedulerKeys,
  streamReport,
  type CampaignStatus,
  type ConnectionRegistry,
  type RedisClient,
} from '../../src/shared/index.js';
import { startWorker, type RunningWorker } from '../../src/worker/index.js';
import { setCredentialEnv } from '../support/fleet.js';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { testConnections } from '../support/connections.js';
import { randomBytes } from 'node:crypto';

/**
 * Upshift on a 3-master Redis Cluster: the basic run and the per-key limit, and deployments
 * (prefixes with their own hash tag) spread over the masters.
 */
const log = createLogger('silent');

describe('Redis Cluster (3 masters on loopback)', () => {
  let cluster: TestCluster;
  let sandbox: Sandbox;
  let redis: RedisClient;
  let connections: ConnectionRegistry;
  const workers: RunningWorker[] = [];

  beforeAll(async () => {
    setCredentialEnv();
    cluster = await startCluster();
    sandbox = await startSandbox({ seed: 11, latencyMs: 5, limitKeyPattern: '^alloy:[^:]+:(t\\d+)\\.' });
    connections = testConnections(sandbox.url);
    redis = createRedis(cluster.url);
    redis.on('error', () => undefined);
    await connectRedis(redis, cluster.url);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    redis?.disconnect();
    await sandbox?.close();
    await cluster?.stop();
  });

  /** Whether `key` hashes to a slot served by the master listening on `port`. */
  async function servedBy(key: string, port: number): Promise<boolean> {
    const probe = cluster.node(cluster.ports[0]!);
    const slots = (await probe.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
    const slot = Number(await probe.cluster('KEYSLOT', key));
    return slots.some(([from, to, [, p]]) => slot >= from && slot <= to && p === port);
  }

  /** A deployment prefix whose hash tag lands on the master listening on `port` (or any). */
  async function prefixOn(port?: number): Promise<string> {
    for (;;) {
      const prefix = `{t${randomBytes(4).toString('hex')}}`;
      if (port === undefined || (await servedBy(prefix, port))) return prefix;
    }
  }

  /** A campaign id whose records hash (in the campaign's own tag) lands on `port`'s master. */
  async function campaignOn(prefix: string, port: number): Promise<string> {
    for (;;) {
      const id = `c${randomBytes(4).toString('hex')}`;
      if (await servedBy(campaignKeys(prefix, id).records, port)) return id;
    }
  }

  async function work(prefix: string, concurrency: number): Promise<void> {
    workers.push(await startWorker({ redisUrl: cluster.url, prefix, logLevel: 'silent' }, log, { connections, concurrency }));
  }

  function waitEnded(prefix: string, id: string): Promise<CampaignStatus> {
    return new Promise((resolve, reject) => {
      const sub = redis.duplicate();
      sub.on('error', () => undefined);
      const done = (s: CampaignStatus | null) => {
        if (s?.finishedAt === undefined) return false;
        sub.disconnect();
        resolve(s);
        return true;
      };
      sub.on('message', () => void readStatus(redis, prefix, id).then(done, reject));
      sub.subscribe(eventsChannel(prefix)).then(() => readStatus(redis, prefix, id).then(done), reject);
    });
  }

  // Only a limited campaign's user ids start with their tenant, which the sandbox's
  // limitKeyPattern counts in-flight calls by.
  const user = (id: string, i: number, limited: boolean) => (limited ? `t${i % 5}.${id}.${i}` : `${id}.${i}`);
  const alloy = (id: string, targets: number, limit?: number) => ({
    spec: {
      id,
      connection: { baseUrl: sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 5000 },
      operation: { type: 'alloy.upgradeWorkflow', workflowId: `wf-${id}` },
      retry: { attempts: 3, backoffMs: 10 },
      limits: limit === undefined ? [] : [{ key: '${target.tenant}', concurrency: limit }],
    },
    fixtures: {
      alloy: {
        workflows: { [`wf-${id}`]: { latestVersion: 2 } },
        installs: Array.from({ length: targets }, (_, i) => ({ workflowId: `wf-${id}`, userId: user(id, i, limit !== undefined), version: 1 })),
      },
    },
    targets: Array.from({ length: targets }, (_, i) => ({ userId: user(id, i, limit !== undefined), tenant: `t${i % 5}` })),
  });

  it('refuses a cluster URL whose prefix has no hash tag, naming the fix', () => {
    expect(() => loadConfig({ REDIS_URL: cluster.url, UPSHIFT_PREFIX: 'upshift' })).toThrow(InputError);
    expect(() => loadConfig({ REDIS_URL: cluster.url, UPSHIFT_PREFIX: 'upshift' })).toThrow(/UPSHIFT_PREFIX=\{upshift\}/);
    expect(loadConfig({ REDIS_URL: cluster.url, UPSHIFT_PREFIX: '{upshift}' }).prefix).toBe('{upshift}');
  });

  it('runs a campaign end to end: every target upgraded once, counters equal the report', async () => {
    const prefix = await prefixOn();
    const c = alloy('basic', 1000);
    sandbox.load(c.fixtures);
    await work(prefix, 20);
    await work(prefix, 20);
    await enqueueCampaign(c.spec, c.targets, { redis, prefix, connections });
    const status = await waitEnded(prefix, 'basic');
    expect(status).toMatchObject({ state: 'completed', total: 1000, upgraded: 1000, failed: 0, pending: 0, active: 0 });
    let lines = 0;
    for await (const line of streamReport(redis, prefix, 'basic')) {
      expect(line.outcome).toBe('upgraded');
      lines++;
    }
    expect(lines).toBe(1000);
    const applied = sandbox.stats().appliedByTarget;
    expect(c.targets.every((t) => applied[`alloy:wf-basic:${t.userId}`] === 1)).toBe(true);
  });

  it('holds a per-key limit across two workers, and uses it', async () => {
    const prefix = await prefixOn();
    const c = alloy('limited', 600, 2);
    sandbox.load(c.fixtures);
    await work(prefix, 25);
    await work(prefix, 25);
    await enqueueCampaign(c.spec, c.targets, { redis, prefix, connections });
    const status = await waitEnded(prefix, 'limited');
    expect(status).toMatchObject({ state: 'completed', total: 600, upgraded: 600 });
    const maxByKey = sandbox.stats().maxInFlightByKey;
    for (const tenant of ['t0', 't1', 't2', 't3', 't4']) expect(maxByKey[tenant]).toBe(2);
  });

  it('spreads deployments over the masters: each prefix lives on the master of its hash tag', async () => {
    const [a, b] = [cluster.ports[1]!, cluster.ports[2]!];
    const prefixes = [await prefixOn(a), await prefixOn(b)];
    const runs = prefixes.map((prefix, i) => ({ prefix, c: alloy(`spread${i}`, 300) }));
    for (const { prefix, c } of runs) {
      sandbox.load(c.fixtures);
      await work(prefix, 10);
      await enqueueCampaign(c.spec, c.targets, { redis, prefix, connections });
    }
    const ended = await Promise.all(runs.map(({ prefix, c }) => waitEnded(prefix, c.spec.id)));
    for (const s of ended) expect(s).toMatchObject({ state: 'completed', total: 300, upgraded: 300 });
    // Each deployment's keys are on its own master and nowhere else.
    for (const [i, port] of [a, b].entries()) {
      const here = cluster.node(port);
      const { status } = campaignKeys(prefixes[i]!, `spread${i}`);
      expect(await here.exists(status)).toBe(1);
      expect(await here.exists(schedulerKeys(prefixes[i]!).workers)).toBe(1);
      const other = cluster.node(i === 0 ? b : a);
      await expect(other.exists(status)).rejects.toThrow(/MOVED/);
    }
  });

  it("spreads one deployment's campaigns over the masters: each campaign's outcome records live on the master of its own tag", async () => {
    const [home, b, c] = cluster.ports as [number, number, number];
    const prefix = await prefixOn(home);
    const ids = [await campaignOn(prefix, b), await campaignOn(prefix, c)];
    await work(prefix, 20);
    for (const id of ids) {
      const run = alloy(id, 400);
      sandbox.load(run.fixtures);
      await enqueueCampaign(run.spec, run.targets, { redis, prefix, connections });
    }
    for (const id of ids) expect(await waitEnded(prefix, id)).toMatchObject({ state: 'completed', total: 400, upgraded: 400 });
    // A closing worker archives its last batch of records before it returns.
    await workers.at(-1)!.close();
    for (const [i, port] of [b, c].entries()) {
      const keys = campaignKeys(prefix, ids[i]!);
      // The records are on the campaign's master; the deployment's master keeps the markers and
      // an empty outbox (the worker moved every record).
      expect(await cluster.node(port).hlen(keys.records)).toBe(400);
      await expect(cluster.node(home).hlen(keys.records)).rejects.toThrow(/MOVED/);
      expect(await cluster.node(home).hlen(keys.outcomes)).toBe(400);
      expect(await cluster.node(home).exists(keys.outbox)).toBe(0);
      // Read back through the cluster client, across the two slots.
      let upgraded = 0;
      for await (const line of streamReport(redis, prefix, ids[i]!)) {
        expect(line).toMatchObject({ outcome: 'upgraded', reason: 'UPGRADED', attempts: 1 });
        expect(line.fields.userId).toBe(line.target);
        upgraded++;
      }
      expect(upgraded).toBe(400);
    }
  });
});
