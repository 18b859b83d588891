/**
 * throughput: the Upshift worker against a bare BullMQ worker + undici (bench/bare-worker.ts),
 * alloy targets, sandbox at zero latency, BENCH_ROUNDS rounds of both back to back.
 * BENCH_CPU_PROF=<dir> writes both workers' CPU profiles there (bench/profile.ts sums them up).
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { enqueueCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS } from '../../src/sandbox/index.js';
import { campaignKeys } from '../../src/shared/index.js';
import { bare, benchConnections, benchConnectionsFile, dropPrefix, median, peakRssMb, post, round2, spawnUntil, spawnWorker, stop, watchCampaigns, type BenchContext, type Scenario } from '../helpers.js';

const TARGETS = Number(process.env.BENCH_TARGETS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONCURRENCY = 100;
/** BENCH_CPU_PROF=<dir>: the throughput scenario's worker processes write V8 CPU profiles there. */
const CPU_PROF_DIR = process.env.BENCH_CPU_PROF;
/**
 * What Redis did for a pipeline between `CONFIG RESETSTAT` and now, per target: commands (all,
 * and script calls), microseconds Redis spent in them (Lua included) and bytes in and out.
 */
async function redisCpuS(redis: BenchContext['redis']): Promise<number> {
  const cpu = await redis.info('cpu');
  const f = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 'NaN');
  return f('used_cpu_user') + f('used_cpu_sys');
}

async function redisCostPerTarget(redis: BenchContext['redis'], targets: number, cpuFromS: number) {
  const stats = await redis.info('commandstats');
  let calls = 0;
  let usec = 0;
  let scripts = 0;
  const byCommand: Record<string, string> = {};
  for (const m of stats.matchAll(/^cmdstat_(\S+?):calls=(\d+),usec=(\d+)/gm)) {
    calls += Number(m[2]);
    usec += Number(m[3]);
    if (m[1] === 'evalsha' || m[1] === 'eval') scripts += Number(m[2]);
    byCommand[m[1]!] = `${round2(Number(m[2]) / targets)} calls, ${round2(Number(m[3]) / targets)} µs`;
  }
  const net = await redis.info('stats');
  const bytes = (f: string) => Number(new RegExp(`^${f}:(\\d+)`, 'm').exec(net)?.[1] ?? 'NaN');
  return {
    commands: round2(calls / targets),
    scriptCalls: round2(scripts / targets),
    // Summed over commandstats: a script's time, plus again its commands' own.
    redisUs: round2(usec / targets),
    // The Redis process's CPU (user + sys), per target: what it took of the machine.
    redisCpuUs: round2((((await redisCpuS(redis)) - cpuFromS) * 1e6) / targets),
    bytesIn: Math.round(bytes('total_net_input_bytes') / targets),
    bytesOut: Math.round(bytes('total_net_output_bytes') / targets),
    byCommand,
  };
}

/** CPU time (user + sys, ms) a live child has used, from /proc (Linux); NaN elsewhere. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * BENCH_AB_CLI=<path to another build's dist/src/cli/main.js>: each round also times that
 * build's worker on the same campaign, between bare and this build's (A/B on one machine state).
 */
const AB_CLI = process.env.BENCH_AB_CLI;

const cpuProfFlags = (name: string): string[] =>
  CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`, `--cpu-prof-name=${name}.cpuprofile`] : [];

async function run({ redis, redisUrl, sandboxUrl: url, env }: BenchContext) {
  const users = Array.from({ length: TARGETS }, (_, i) => `user-${i}`);
  const upshiftMs: number[] = [];
  const bareMs: number[] = [];
  const upshiftRss: number[] = [];
  const bareRss: number[] = [];
  const upshiftCpu: number[] = [];
  const abMs: number[] = [];
  const abCpu: number[] = [];
  const abRss: number[] = [];
  const abRedis: Awaited<ReturnType<typeof redisCostPerTarget>>[] = [];
  const bareCpu: number[] = [];
  const markerBytes: number[] = [];
  const recordBytes: number[] = [];
  const upshiftRedis: Awaited<ReturnType<typeof redisCostPerTarget>>[] = [];
  const bareRedis: typeof upshiftRedis = [];
  for (let round = 0; round < ROUNDS; round++) {
    await post(`${url}/__sandbox/reset`, {});
    await post(`${url}/__sandbox/fixtures`, {
      alloy: { workflows: { 'wf-bench': { latestVersion: 2 } }, installs: users.map((userId) => ({ workflowId: 'wf-bench', userId, version: 1 })) },
    });

    // bare: jobs first, then the worker, timed from ready to the N-th completion
    const barePrefix = `bench-bare-${round}`;
    const q = new Queue('bare', { connection: redis, prefix: barePrefix });
    for (let i = 0; i < users.length; i += 1000) {
      await q.addBulk(users.slice(i, i + 1000).map((userId) => ({ name: 'u', data: { userId }, opts: { removeOnComplete: true } })));
    }
    await q.close();
    await redis.config('RESETSTAT');
    let cpuFrom = await redisCpuS(redis);
    const b = await spawnUntil([...cpuProfFlags(`bare-${round}`), bare, url, 'bare', barePrefix, String(CONCURRENCY), String(TARGETS), SANDBOX_KEYS.alloy], env, 'bare worker ready');
    const it = b.lines[Symbol.asyncIterator]();
    for (;;) {
      const { value, done } = await it.next();
      if (done) throw new Error(`bare worker ended before its ${TARGETS} completions`);
      if (value.startsWith('done ')) {
        bareMs.push(Number(value.slice(5)));
        break;
      }
    }
    bareRss.push(peakRssMb(b.proc.pid!));
    bareCpu.push(cpuMs(b.proc.pid!));
    await once(b.proc, 'exit');
    bareRedis.push(await redisCostPerTarget(redis, TARGETS, cpuFrom));

    // upshift: campaign first, then the worker, timed from ready to the completion event
    const upPrefix = `bench-up-${round}`;
    const { campaignId } = await enqueueCampaign(
      { connection: { baseUrl: url, credentialRef: 'BENCH_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-bench' } },
      users.map((userId) => ({ userId })),
      { redis, prefix: upPrefix, connections: benchConnections(url) },
    );
    const watch = await watchCampaigns(redisUrl, upPrefix, [campaignId], 'ended');
    await redis.config('RESETSTAT');
    cpuFrom = await redisCpuS(redis);
    const w = await spawnWorker(CONCURRENCY, { ...env, UPSHIFT_PREFIX: upPrefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(url) }, cpuProfFlags(`upshift-${round}`));
    const t0 = Date.now();
    await watch.wait();
    upshiftMs.push(Date.now() - t0);
    upshiftRss.push(peakRssMb(w.proc.pid!));
    upshiftCpu.push(cpuMs(w.proc.pid!));
    await stop(w.proc);
    watch.close();
    upshiftRedis.push(await redisCostPerTarget(redis, TARGETS, cpuFrom));
    // What a finished target leaves: its marker in the deployment's slot, its record in the
    // campaign's own (the worker archived every record before it exited).
    const keys = campaignKeys(upPrefix, campaignId);
    if ((await redis.exists(keys.outbox)) !== 0) throw new Error('bench: records left in the outbox after a graceful stop');
    markerBytes.push(Number(await redis.memory('USAGE', keys.outcomes, 'SAMPLES', 0)) / TARGETS);
    recordBytes.push(Number(await redis.memory('USAGE', keys.records, 'SAMPLES', 0)) / TARGETS);
    await dropPrefix(redis, barePrefix);
    await dropPrefix(redis, upPrefix);

    if (AB_CLI) {
      const abPrefix = `bench-ab-${round}`;
      const ab = await enqueueCampaign(
        { connection: { baseUrl: url, credentialRef: 'BENCH_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-bench' } },
        users.map((userId) => ({ userId })),
        { redis, prefix: abPrefix, connections: benchConnections(url) },
      );
      const abWatch = await watchCampaigns(redisUrl, abPrefix, [ab.campaignId], 'ended');
      await redis.config('RESETSTAT');
      cpuFrom = await redisCpuS(redis);
      const aw = await spawnUntil([AB_CLI, 'worker', '--concurrency', String(CONCURRENCY)], { ...env, UPSHIFT_PREFIX: abPrefix, UPSHIFT_CONNECTIONS: benchConnectionsFile(url) }, 'upshift worker ready');
      const a0 = Date.now();
      await abWatch.wait();
      abMs.push(Date.now() - a0);
      abCpu.push(cpuMs(aw.proc.pid!));
      abRss.push(peakRssMb(aw.proc.pid!));
      await stop(aw.proc);
      abWatch.close();
      abRedis.push(await redisCostPerTarget(redis, TARGETS, cpuFrom));
      await dropPrefix(redis, abPrefix);
    }
  }
  const upRate = TARGETS / (median(upshiftMs) / 1000);
  const bareRate = TARGETS / (median(bareMs) / 1000);
  // Each round runs both pipelines back to back, so its ratio is measured on one state of the
  // machine; the median of those ratios shrugs off a VM that speeds up or slows down between
  // rounds (measured: bare BullMQ alone ranged 5,900-11,000 targets/s across runs of one day).
  const roundRatios = upshiftMs.map((ms, i) => bareMs[i]! / ms);
  return {
    targets: TARGETS,
    concurrency: CONCURRENCY,
    rounds: ROUNDS,
    upshiftTargetsPerS: Math.round(upRate),
    bareTargetsPerS: Math.round(bareRate),
    roundRatios: roundRatios.map(round2),
    ratio: round2(median(roundRatios)),
    // The worker process's CPU (user + sys) from its start to the last target, per target.
    upshiftWorkerCpuUs: Math.round((median(upshiftCpu) * 1000) / TARGETS),
    bareWorkerCpuUs: Math.round((median(bareCpu) * 1000) / TARGETS),
    ...(AB_CLI
      ? {
          ab: {
            cli: AB_CLI,
            roundRatios: abMs.map((ms, i) => round2(bareMs[i]! / ms)),
            ratio: round2(median(abMs.map((ms, i) => bareMs[i]! / ms))),
            workerCpuUs: Math.round((median(abCpu) * 1000) / TARGETS),
            peakRssMb: Math.round(median(abRss)),
            redisPerTarget: abRedis.sort((a, b) => a.redisUs - b.redisUs)[Math.floor(abRedis.length / 2)]!,
          },
        }
      : {}),
    upshiftPeakRssMb: Math.round(median(upshiftRss)),
    barePeakRssMb: Math.round(median(bareRss)),
    finishedBytesDeploymentSlot: Math.round(median(markerBytes)),
    finishedBytesCampaignSlot: Math.round(median(recordBytes)),
    // The median round's (by Redis time) figures; one round's, so its per-command split adds up.
    upshiftRedisPerTarget: upshiftRedis.sort((a, b) => a.redisUs - b.redisUs)[Math.floor(upshiftRedis.length / 2)]!,
    bareRedisPerTarget: bareRedis.sort((a, b) => a.redisUs - b.redisUs)[Math.floor(bareRedis.length / 2)]!,
  };
}

export const throughput: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'throughput',
  sharedSandbox: true,
  run,
  rows: (t) => [
    `| throughput, ${t.targets} alloy targets, concurrency ${t.concurrency} (targets/s, medians; ratio: median of the ${t.rounds} rounds' ratios ${t.roundRatios.join(' ')}) | ${t.upshiftTargetsPerS} | ${t.bareTargetsPerS} (bare BullMQ + undici) | ${t.ratio} |`,
    ...(t.ab
      ? [
          `| A/B: ${t.ab.cli} (ratio: median of ${t.ab.roundRatios.join(' ')}; worker CPU µs per target; peak RSS MB) | ${t.ab.ratio}; ${t.ab.workerCpuUs} µs; ${t.ab.peakRssMb} MB | | |`,
          `| A/B: Redis per target: commands (script calls), Redis CPU µs, bytes in / out | ${t.ab.redisPerTarget.commands} (${t.ab.redisPerTarget.scriptCalls}), ${t.ab.redisPerTarget.redisCpuUs} µs, ${t.ab.redisPerTarget.bytesIn} / ${t.ab.redisPerTarget.bytesOut} | | |`,
        ]
      : []),
    `| worker peak RSS (MB) | ${t.upshiftPeakRssMb} | ${t.barePeakRssMb} | |`,
    `| worker CPU per target (µs, user + sys, start-up included) | ${t.upshiftWorkerCpuUs} | ${t.bareWorkerCpuUs} | |`,
    `| Redis per target: commands (script calls), Redis CPU µs, bytes in / out | ${t.upshiftRedisPerTarget.commands} (${t.upshiftRedisPerTarget.scriptCalls}), ${t.upshiftRedisPerTarget.redisCpuUs} µs, ${t.upshiftRedisPerTarget.bytesIn} / ${t.upshiftRedisPerTarget.bytesOut} | ${t.bareRedisPerTarget.commands} (${t.bareRedisPerTarget.scriptCalls}), ${t.bareRedisPerTarget.redisCpuUs} µs, ${t.bareRedisPerTarget.bytesIn} / ${t.bareRedisPerTarget.bytesOut} | |`,
    `| Redis bytes per finished target: deployment slot (marker) / campaign slot (record) | ${t.finishedBytesDeploymentSlot} / ${t.finishedBytesCampaignSlot} | 0 (removeOnComplete) | |`,
  ],
};
