/**
 * cluster: the throughput scenario's shape on a 3-master Redis Cluster on loopback (started as
 * test/support/cluster.ts starts one) next to the single Redis of the same run. One Upshift
 * worker at concurrency 100, the shared sandbox at 0 ms, BENCH_CLUSTER_TARGETS (default 30,000)
 * alloy targets split over three campaigns whose ids put their outcome records on the three
 * different masters (the deployment's scheduler is one hash tag, so on one master: docs/SCALING.md,
 * "Redis Cluster"). BENCH_CLUSTER_ROUNDS (default 3) rounds, each running the single node and
 * then the cluster: targets/s from the worker's ready to the last campaign's end, and the median
 * of the rounds' own ratios (cluster / single).
 */
import { randomBytes } from 'node:crypto';
import { enqueueCampaign } from '../../src/producer/index.js';
import { campaignKeys, connectRedis, createRedis, type RedisClient } from '../../src/shared/index.js';
import { startCluster, type TestCluster } from '../../test/support/cluster.js';
import { benchConnections, benchConnectionsFile, dropPrefix, median, post, round2, spawnWorker, stop, watchCampaigns, type BenchContext, type Scenario } from '../helpers.js';

const CLUSTER_TARGETS = Number(process.env.BENCH_CLUSTER_TARGETS ?? 30_000);
const CLUSTER_ROUNDS = Number(process.env.BENCH_CLUSTER_ROUNDS ?? 3);
const CLUSTER_CAMPAIGNS = 3;
const CONCURRENCY = 100;

/** Master port per slot range, read once. */
async function slotMap(cluster: TestCluster): Promise<(slot: number) => number> {
  const probe = cluster.node(cluster.ports[0]!);
  const ranges = (await probe.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
  return (slot) => ranges.find(([from, to]) => slot >= from && slot <= to)![2][1];
}

/** Campaign ids whose records key (the campaign's own hash tag) lands on each master in turn. */
async function idsOverMasters(cluster: TestCluster, prefix: string, round: number): Promise<string[]> {
  const probe = cluster.node(cluster.ports[0]!);
  const masterOf = await slotMap(cluster);
  const ids: string[] = [];
  for (const port of cluster.ports.slice(0, CLUSTER_CAMPAIGNS)) {
    for (;;) {
      const id = `cl${round}-${randomBytes(3).toString('hex')}`;
      if (masterOf(Number(await probe.cluster('KEYSLOT', campaignKeys(prefix, id).records))) === port) {
        ids.push(id);
        break;
      }
    }
  }
  return ids;
}

/** One campaign set on one Redis (plain or cluster): ms from the worker's ready to the last end. */
async function runOn(ctx: BenchContext, redis: RedisClient, redisUrl: string, subscribeUrl: string, prefix: string, ids: string[], users: string[]): Promise<number> {
  const url = ctx.sandboxUrl;
  const per = Math.ceil(users.length / ids.length);
  for (const [j, id] of ids.entries()) {
    await enqueueCampaign(
      { id, connection: { baseUrl: url, credentialRef: 'BENCH_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-cluster' } },
      users.slice(j * per, (j + 1) * per).map((userId) => ({ userId })),
      { redis, prefix, connections: benchConnections(url) },
    );
  }
  const watch = await watchCampaigns(subscribeUrl, prefix, ids, 'ended');
  const w = await spawnWorker(CONCURRENCY, { ...ctx.env, REDIS_URL: redisUrl, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(url) });
  const t0 = Date.now();
  try {
    const at = await watch.wait(600_000);
    return Math.max(...at.values()) - t0;
  } finally {
    await stop(w.proc);
    watch.close();
  }
}

async function run(ctx: BenchContext) {
  const cluster = await startCluster();
  const credis = createRedis(cluster.url);
  credis.on('error', () => undefined);
  const users = Array.from({ length: CLUSTER_TARGETS }, (_, i) => `user-${i}`);
  const singleMs: number[] = [];
  const clusterMs: number[] = [];
  const recordsPerMaster: Record<string, number>[] = [];
  try {
    await connectRedis(credis, cluster.url);
    for (let round = 0; round < CLUSTER_ROUNDS; round++) {
      await post(`${ctx.sandboxUrl}/__sandbox/reset`, {});
      await post(`${ctx.sandboxUrl}/__sandbox/fixtures`, {
        alloy: { workflows: { 'wf-cluster': { latestVersion: 2 } }, installs: users.map((userId) => ({ workflowId: 'wf-cluster', userId, version: 1 })) },
      });
      // The same deployment prefix (one hash tag) and campaign ids on both.
      const prefix = `{bench-cl-${round}}`;
      const ids = await idsOverMasters(cluster, prefix, round);
      singleMs.push(await runOn(ctx, ctx.redis, ctx.redisUrl, ctx.redisUrl, prefix, ids, users));
      await dropPrefix(ctx.redis, prefix);
      await dropPrefix(ctx.redis, prefix.slice(1, -1));
      await post(`${ctx.sandboxUrl}/__sandbox/reset`, {});
      await post(`${ctx.sandboxUrl}/__sandbox/fixtures`, {
        alloy: { workflows: { 'wf-cluster': { latestVersion: 2 } }, installs: users.map((userId) => ({ workflowId: 'wf-cluster', userId, version: 1 })) },
      });
      // Pub/sub is cluster-wide: one node's subscriber hears every master's PUBLISH.
      clusterMs.push(await runOn(ctx, credis, cluster.url, `redis://127.0.0.1:${cluster.ports[0]}`, prefix, ids, users));
      // Where the records went: each campaign's on its own master.
      const masterOf = await slotMap(cluster);
      const perMaster: Record<string, number> = {};
      for (const id of ids) {
        const key = campaignKeys(prefix, id).records;
        const port = masterOf(Number(await cluster.node(cluster.ports[0]!).cluster('KEYSLOT', key)));
        perMaster[String(port)] = (perMaster[String(port)] ?? 0) + Number(await cluster.node(port).hlen(key));
      }
      recordsPerMaster.push(perMaster);
    }
  } finally {
    credis.disconnect();
    await cluster.stop();
  }
  const ratios = clusterMs.map((ms, i) => singleMs[i]! / ms);
  return {
    targets: CLUSTER_TARGETS,
    campaigns: CLUSTER_CAMPAIGNS,
    concurrency: CONCURRENCY,
    rounds: CLUSTER_ROUNDS,
    clusterTargetsPerS: Math.round(CLUSTER_TARGETS / (median(clusterMs) / 1000)),
    singleTargetsPerS: Math.round(CLUSTER_TARGETS / (median(singleMs) / 1000)),
    roundRatios: ratios.map(round2),
    ratio: round2(median(ratios)),
    clusterMs,
    singleMs,
    recordsPerMaster,
  };
}

export const cluster: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'cluster',
  sharedSandbox: true,
  run,
  rows: (c) => [
    `| Redis Cluster, 3 masters on loopback: ${c.targets} alloy targets in ${c.campaigns} campaigns (records on 3 masters), 1 worker x ${c.concurrency}, sandbox at 0 ms (targets/s, medians; ratio: median of the ${c.rounds} rounds' cluster / single ${c.roundRatios.join(' ')}) | ${c.clusterTargetsPerS} | ${c.singleTargetsPerS} (single Redis, same run) | ${c.ratio} |`,
  ],
};
