import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { eventsChannel, readStatus, streamReport, type CampaignStatus } from '../../src/shared/index.js';
import { freePort, startPrivateRedis } from '../../scripts/lib/private-redis.js';
import { alloyFleet, spawnWorker, type WorkerProcess } from '../support/fleet.js';
import { testPrefix } from '../support/harness.js';
import { connectionsFile, testConnections } from '../support/connections.js';
import { recordFigures } from './figures.js';

/** Waits for the campaign's `ended` event on `url`, riding over reconnects. */
async function ended(url: string, prefix: string, id: string, timeoutMs = 120_000): Promise<CampaignStatus> {
  const sub = new Redis(url, { maxRetriesPerRequest: null });
  const reader = new Redis(url, { maxRetriesPerRequest: null });
  sub.on('error', () => undefined);
  reader.on('error', () => undefined);
  try {
    const done = new Promise<void>((resolve) =>
      sub.on('message', (_c, m: string) => {
        const e = JSON.parse(m) as { id: string; ended?: boolean };
        if (e.id === id && e.ended) resolve();
      }),
    );
    await sub.subscribe(eventsChannel(prefix));
    if ((await readStatus(reader, prefix, id))?.finishedAt === undefined) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        done,
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${id} did not end`)), timeoutMs))),
      ]).finally(() => clearTimeout(timer));
    }
    return (await readStatus(reader, prefix, id))!;
  } finally {
    sub.disconnect();
    reader.disconnect();
  }
}

describe('Redis restarts and outages', () => {
  let sandbox: Sandbox;
  let procs: WorkerProcess[];
  let prefix: string;

  beforeEach(async () => {
    sandbox = await startSandbox({ latencyMs: 5 });
    procs = [];
    prefix = testPrefix();
  });
  afterEach(async () => {
    for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await sandbox.close();
  });

  it('Redis killed mid-run and restarted from its AOF (appendfsync everysec): workers reconnect and finish, nothing lost', async () => {
    const aof = ['--appendonly', 'yes', '--appendfsync', 'everysec'];
    const first = await startPrivateRedis(aof);
    const fleet = alloyFleet(3000);
    sandbox.load(fleet.fixtures);
    const redis = new Redis(first.url, { maxRetriesPerRequest: null });
    redis.on('error', () => undefined);
    const connections = testConnections(sandbox.url);
    const env = { REDIS_URL: first.url, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: connectionsFile(connections) };
    for (let i = 0; i < 2; i++) procs.push(await spawnWorker(env, ['--concurrency', '20', '--lease-ms', '2000']));
    await enqueueCampaign(
      { id: 'restart', connection: { baseUrl: sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 2000 }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } },
      fleet.targets,
      { redis, prefix, connections },
    );
    await sandbox.requestsReached(1000);

    // SIGKILL: no shutdown save; up to a second of writes is gone. Same port, same directory.
    first.proc.kill('SIGKILL');
    await once(first.proc, 'exit');
    const down = Date.now();
    const second = spawn('redis-server', ['--port', String(first.port), '--bind', '127.0.0.1', '--save', '', '--dir', first.dir, ...aof], { stdio: 'ignore' });
    try {
      const status = await ended(first.url, prefix, 'restart');
      expect(status).toMatchObject({ state: 'completed', total: 3000, failed: 0, pending: 0, active: 0 });
      // Rewound by up to a second, a target may be called again: it is then found upgraded
      // already (Alloy answers upgraded:false) and recorded NOT_UPGRADED, never lost.
      expect(status.upgraded + status.skipped).toBe(3000);
      const lines = [];
      for await (const line of streamReport(redis, prefix, 'restart')) lines.push(line);
      expect(lines).toHaveLength(3000);
      expect(lines.every((l) => l.outcome === 'upgraded' || (l.outcome === 'skipped' && l.reason === 'NOT_UPGRADED'))).toBe(true);
      const installs = sandbox.state().alloy!.installs!;
      expect(installs.every((i) => i.version === 2)).toBe(true);
      const calls = sandbox.stats().requests;
      const figures = { targets: 3000, workers: 2, redisDownAtRequest: 1000, repeatedCalls: calls - 3000, recordedNotUpgraded: status.skipped, lost: 0, finishedAfterRestartS: Math.round((Date.now() - down) / 1000) };
      console.log(`redis restart figures: ${JSON.stringify(figures)}`);
      recordFigures('redis-restart', figures);
      for (const p of procs) expect(p.proc.exitCode).toBeNull(); // no worker crashed
    } finally {
      redis.disconnect();
      second.kill('SIGTERM');
      await once(second, 'exit');
      rmSync(first.dir, { recursive: true, force: true });
    }
  });

  it('a worker started while Redis is down waits with a clear message and starts when it comes up', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    let waiting!: () => void;
    const saidWaiting = new Promise<void>((resolve) => (waiting = resolve));
    const starting = spawnWorker({ REDIS_URL: url, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: connectionsFile(testConnections(sandbox.url)) }, ['--concurrency', '2'], (err) => {
      if (err.includes('waiting for Redis')) waiting();
    });
    // It keeps trying (no crash, no exit) while Redis is down; Redis comes up 1.5 s after the
    // worker first said it is waiting (not after a fixed time: on a loaded machine the worker's
    // own start-up can take longer than that).
    await Promise.race([saidWaiting, starting.then(() => Promise.reject(new Error('the worker was ready with Redis down')))]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    try {
      const w = await starting;
      procs.push(w);
      expect(w.proc.exitCode).toBeNull();
      expect(w.stderr()).toMatch(/waiting for Redis/);
      expect(w.stderr()).not.toMatch(/at .*\.js:\d+/); // a message, not a stack trace
    } finally {
      for (const p of procs) p.proc.kill('SIGTERM');
      await Promise.all(procs.map((p) => p.exited));
      procs = [];
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
    recordFigures('redis-down-at-start', { worker: 'waited with "waiting for Redis" and became ready once Redis was up', producer: 'exits 1 with a one-line message, nothing written (test/integration/cli.test.ts)' });
  });
});
