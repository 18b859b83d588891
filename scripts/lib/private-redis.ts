import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A Redis for tests and the demo, and how to stop it. */
export interface TestRedis {
  readonly url: string;
  readonly how: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function pingUntilReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      return;
    } catch (err) {
      r.disconnect();
      if (Date.now() > deadline) throw err;
      await new Promise((res) => setTimeout(res, 50));
    }
  }
}

/**
 * Starts a private redis-server (no persistence unless `extraArgs` asks) on a free loopback
 * port; with `password`, it requires it and the URL carries it.
 */
export async function startPrivateRedis(
  extraArgs: string[] = [],
  opts: { password?: string } = {},
): Promise<TestRedis & { proc: ChildProcess; port: number; dir: string }> {
  const port = await freePort();
  if (opts.password !== undefined) extraArgs = [...extraArgs, '--requirepass', opts.password];
  const dir = mkdtempSync(join(tmpdir(), 'upshift-redis-'));
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
    { stdio: 'ignore' },
  );
  const spawned = new Promise<void>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('spawn', resolve);
  });
  await spawned;
  const url = opts.password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(opts.password)}@127.0.0.1:${port}`;
  await pingUntilReady(url, 10_000);
  return {
    url,
    port,
    dir,
    proc,
    how: `private redis-server on port ${port}`,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((res) => proc.once('exit', res));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

