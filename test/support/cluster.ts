import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from '../../scripts/lib/private-redis.js';

const run = promisify(execFile);

/** A 3-master Redis Cluster on loopback, private to one test file. */
export interface TestCluster {
  /** `redis://127.0.0.1:<port>?cluster=true`: Upshift's way of naming a cluster seed node. */
  readonly url: string;
  readonly ports: readonly number[];
  /** A plain connection to one node (for CLUSTER commands and per-node checks). */
  node(port: number): Redis;
  stop(): Promise<void>;
}

/**
 * A free loopback port low enough that its cluster bus port (+10000) is a port too. The bus
 * port is not checked (nothing can reserve it); a clash shows up as a failed `--cluster create`.
 */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p > 55_000 || taken.has(p)) continue;
    taken.add(p);
    return p;
  }
}

/**
 * `redis-server --cluster-enabled yes` x3, joined with `redis-cli --cluster create` (all 16384
 * slots over three masters, no replicas); resolves once every node reports `cluster_state:ok`.
 */
export async function startCluster(): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'upshift-cluster-'));
  const taken = new Set<number>();
  const ports = [await clusterPort(taken), await clusterPort(taken), await clusterPort(taken)];
  const procs: ChildProcess[] = [];
  const conns: Redis[] = [];
  const stop = async () => {
    for (const c of conns) c.disconnect();
    await Promise.all(
      procs.map((p) =>
        p.exitCode === null && p.signalCode === null ? new Promise((res) => (p.once('exit', res), p.kill('SIGTERM'))) : undefined,
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const nodeDir = join(dir, String(port));
      const proc = spawn(
        'sh',
        ['-c', `mkdir -p ${nodeDir} && exec redis-server --port ${port} --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 --save '' --appendonly no --dir ${nodeDir}`],
        { stdio: 'ignore' },
      );
      procs.push(proc);
    }
    const node = (port: number) => {
      const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: null });
      r.on('error', () => undefined);
      conns.push(r);
      return r;
    };
    for (const port of ports) await untilAnswers(node(port));
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) await untilClusterOk(node(port));
    return { url: `redis://127.0.0.1:${ports[0]}?cluster=true`, ports, node, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function untilAnswers(r: Redis): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if (r.status === 'wait') await r.connect();
      await r.ping();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

/** Cluster state converges over the gossip bus; there is no event to wait on from outside. */
async function untilClusterOk(r: Redis): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const info = await r.cluster('INFO');
    if (/cluster_state:ok/.test(String(info))) return;
    if (Date.now() > deadline) throw new Error(`cluster did not converge: ${String(info)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
