import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { startSandbox, type Sandbox, type SandboxConfig, type SandboxFixtures, type SandboxOptions } from '../../src/sandbox/index.js';
import { createLogger, loadScripts, TARGET_QUEUE, type ConnectionRegistry, type Scripts } from '../../src/shared/index.js';
import { startWorker, type RunningWorker, type WorkerOptions } from '../../src/worker/index.js';
import { connectionsFile, noConnections, testConnectionsWith } from './connections.js';
import { setCredentialEnv, spawnWorker, type WorkerProcess } from './fleet.js';
import { deletePrefix, newRedis, redisUrl, testPrefix } from './harness.js';

/** What `startWorker` takes, the connections registry included (the deployment's by default). */
export type WorkerStartOptions = Partial<WorkerOptions> & { readonly connections?: ConnectionRegistry };

export interface DeploymentOptions {
  /** Starts a sandbox with these options (`{}`: the defaults); read it as `sandbox`. */
  readonly sandbox?: Partial<SandboxOptions>;
  /** Base URLs registered after the sandboxes' (an origin that never answers, a test server). */
  readonly urls?: readonly string[];
  /** Credential variables registered besides `TEST_CREDENTIAL_REFS` (connections.ts). */
  readonly refs?: readonly string[];
  /** Starts one in-process worker with these options once the sandbox is up; read it as `worker`. */
  readonly worker?: WorkerStartOptions;
  /** Options every `startWorker()` of the deployment starts from (the test's own go on top). */
  readonly workerDefaults?: WorkerStartOptions;
  /** Sets the sandbox keys' credential variables in this process (workers read them from there). */
  readonly credentials?: boolean;
  /**
   * Registers a stand-in worker (id `w1`) of this concurrency for `leaseMs`, so that the
   * scheduler scripts dispatch with no worker running (tests that drive `scripts` step by step).
   */
  readonly standIn?: { readonly leaseMs: number; readonly concurrency: number };
  /** `'each'` (the default): a deployment per test. `'all'`: one for the block, for setups too slow to repeat. */
  readonly scope?: 'each' | 'all';
}

/** What the producer functions take: `enqueueCampaign(spec, targets, t.producer)`. */
export interface ProducerOptions {
  readonly redis: Redis;
  readonly prefix: string;
  readonly connections: ConnectionRegistry;
}

/**
 * A test's own deployment: a prefix nobody else uses, a Redis connection, the sandboxes and
 * workers it starts and the connections registry of their URLs. `close()` ends all of it, in
 * the order that lets each part finish cleanly (workers before the sandbox they call, every key
 * deleted last).
 */
export interface Deployment {
  readonly redis: Redis;
  readonly prefix: string;
  /** The first sandbox started (`options.sandbox`, else the first `startSandbox()`). */
  readonly sandbox: Sandbox;
  /** The registry of every sandbox started so far, then `options.urls`: a fresh one once another starts. */
  readonly connections: ConnectionRegistry;
  readonly producer: ProducerOptions;
  /** The scheduler scripts on the deployment's prefix. */
  readonly scripts: Scripts;
  /** The worker of `options.worker`. */
  readonly worker: RunningWorker;
  /** Every in-process worker started, in order. */
  readonly workers: readonly RunningWorker[];
  startSandbox(opts?: Partial<SandboxOptions>): Promise<Sandbox>;
  /** An in-process worker on the deployment's prefix and registry (as it is when the worker starts). */
  startWorker(opts?: WorkerStartOptions): Promise<RunningWorker>;
  /** A worker process from the build (killed at close if still running). */
  spawnWorker(args?: string[], env?: Record<string, string>, onStderr?: (all: string) => void): Promise<WorkerProcess>;
  /** The environment of a worker or CLI process on this deployment. */
  env(): { REDIS_URL: string; UPSHIFT_PREFIX: string; UPSHIFT_CONNECTIONS: string };
  /** Closes the in-process workers now (a closing worker finishes its archive batch first). */
  closeWorkers(): Promise<void>;
  /** Runs `cleanup` at close, after the workers and before the sandboxes (in the order deferred). */
  defer(cleanup: () => unknown): void;
  /** A new temporary directory, removed at close (after the processes that may write to it). */
  tempDir(prefix: string): string;
  /**
   * Listens for target jobs going active (BullMQ's queue events): `reached` resolves once `n`
   * have. Resolves once listening (start the workers after, so that none is missed); the promise
   * is wrapped, as a promise resolved with a promise would wait for the inner one.
   */
  jobsActive(n: number): Promise<{ readonly reached: Promise<void> }>;
  close(): Promise<void>;
}

const silent = createLogger('silent');
const cliPath = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

/** A deployment for code that manages its own lifetime: `try { … } finally { await d.close() }`. */
export async function openDeployment(options: DeploymentOptions = {}): Promise<Deployment> {
  if (options.credentials) setCredentialEnv();
  const d = new OpenDeployment(options);
  try {
    if (options.standIn) await d.scripts.renew(options.standIn.leaseMs, 'w1', options.standIn.concurrency, []);
    if (options.sandbox) await d.startSandbox(options.sandbox);
    if (options.worker) await d.startWorker(options.worker);
  } catch (err) {
    await d.close();
    throw err;
  }
  return d;
}

/**
 * The fixture a describe block begins with: `const t = setupDeployment({ sandbox: {} })` opens a
 * deployment before each test (or once, `scope: 'all'`) and closes it after. Read its members
 * inside the tests, as `t.prefix` and the like: they are the current test's. Hooks the file
 * registers after it run inside it: before-hooks once it is open, after-hooks before it closes
 * (vitest runs after-hooks last-registered first).
 */
export function setupDeployment(options: DeploymentOptions = {}): Deployment {
  let current: Deployment | undefined;
  const [before, after] = options.scope === 'all' ? [beforeAll, afterAll] : [beforeEach, afterEach];
  before(async () => {
    current = await openDeployment(options);
  });
  after(async () => {
    const d = current;
    current = undefined;
    await d?.close();
  });
  return live('setupDeployment', () => current);
}

export interface ListeningProcess {
  readonly proc: ChildProcess;
  /** Where it listens, as it printed it. */
  readonly url: string;
  /** Resolves with the exit code when the process ends. */
  readonly exited: Promise<[number | null]>;
  stderr(): string;
}

/**
 * `upshift <command> ARGS` from the build (`npm test` builds first), resolved once it prints
 * `upshift <what> listening on <url>` (`api` for serve, `sandbox` for sandbox).
 */
export async function spawnListening(command: 'serve' | 'sandbox', args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ListeningProcess> {
  const proc = spawn(process.execPath, [cliPath, command, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(proc, 'exit') as Promise<[number | null]>;
  const ready = new RegExp(`upshift ${command === 'serve' ? 'api' : command} listening on (\\S+)`);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(([code]) => reject(new Error(`upshift ${command} exited (${code}) before listening: ${stderr}`)));
  });
  return { proc, url, exited, stderr: () => stderr };
}

/** `upshift serve ARGS`, resolved once it says where it listens. */
export function spawnApi(args: string[], env: NodeJS.ProcessEnv): Promise<ListeningProcess> {
  return spawnListening('serve', args, env);
}

/**
 * One sandbox for a whole file (`startSandbox(opts)` once), put back to `config` and `fixtures`
 * before each test: for the sandbox's own tests, which need no Redis.
 */
export function setupSandbox(opts: Partial<SandboxOptions>, reset: { readonly config: SandboxConfig; readonly fixtures: SandboxFixtures }): Sandbox {
  let current: Sandbox | undefined;
  beforeAll(async () => {
    current = await startSandbox(opts);
  });
  afterAll(async () => {
    await current?.close();
  });
  beforeEach(() => {
    current!.reset();
    current!.configure(reset.config);
    current!.load(reset.fixtures);
  });
  return live('setupSandbox', () => current);
}

/** An object that reads through to what `get` returns now (the current test's), methods bound to it. */
function live<T extends object>(what: string, get: () => T | undefined): T {
  return new Proxy({} as T, {
    get(_, key) {
      const current = get();
      if (current === undefined) throw new Error(`${what}: ${String(key)} read outside a test`);
      const value: unknown = Reflect.get(current, key);
      return typeof value === 'function' ? value.bind(current) : value;
    },
  });
}

class OpenDeployment implements Deployment {
  readonly redis = newRedis();
  readonly prefix = testPrefix();
  readonly workers: RunningWorker[] = [];
  private readonly sandboxes: Sandbox[] = [];
  private readonly procs: WorkerProcess[] = [];
  private readonly cleanups: (() => unknown)[] = [];
  private registry: { urls: string; connections: ConnectionRegistry } | undefined;
  private loaded: Scripts | undefined;

  constructor(private readonly options: DeploymentOptions) {}

  get sandbox(): Sandbox {
    const s = this.sandboxes[0];
    if (s === undefined) throw new Error('this deployment started no sandbox (give `sandbox` options)');
    return s;
  }

  get connections(): ConnectionRegistry {
    const urls = [...this.sandboxes.map((s) => s.url), ...(this.options.urls ?? [])];
    if (this.registry?.urls !== urls.join(' ')) {
      const connections = urls.length === 0 ? noConnections() : testConnectionsWith(urls, this.options.refs ?? []);
      this.registry = { urls: urls.join(' '), connections };
    }
    return this.registry.connections;
  }

  get producer(): ProducerOptions {
    return { redis: this.redis, prefix: this.prefix, connections: this.connections };
  }

  get scripts(): Scripts {
    return (this.loaded ??= loadScripts(this.redis, this.prefix));
  }

  get worker(): RunningWorker {
    const w = this.workers[0];
    if (w === undefined) throw new Error('this deployment started no worker (give `worker` options)');
    return w;
  }

  async startSandbox(opts: Partial<SandboxOptions> = {}): Promise<Sandbox> {
    const s = await startSandbox(opts);
    this.sandboxes.push(s);
    return s;
  }

  async startWorker(opts: WorkerStartOptions = {}): Promise<RunningWorker> {
    const w = await startWorker({ redisUrl: redisUrl(), prefix: this.prefix }, silent, {
      connections: this.connections,
      ...this.options.workerDefaults,
      ...opts,
    });
    this.workers.push(w);
    return w;
  }

  async spawnWorker(args: string[] = [], env: Record<string, string> = {}, onStderr?: (all: string) => void): Promise<WorkerProcess> {
    const p = await spawnWorker({ ...this.env(), ...env }, args, onStderr);
    this.procs.push(p);
    return p;
  }

  env(): { REDIS_URL: string; UPSHIFT_PREFIX: string; UPSHIFT_CONNECTIONS: string } {
    return { REDIS_URL: redisUrl(), UPSHIFT_PREFIX: this.prefix, UPSHIFT_CONNECTIONS: connectionsFile(this.connections) };
  }

  async closeWorkers(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }

  defer(cleanup: () => unknown): void {
    this.cleanups.push(cleanup);
  }

  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.defer(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  async jobsActive(n: number): Promise<{ readonly reached: Promise<void> }> {
    const events = new QueueEvents(TARGET_QUEUE, { connection: { url: redisUrl() } as never, prefix: this.prefix });
    this.defer(() => events.close());
    await events.waitUntilReady();
    let active = 0;
    return { reached: new Promise<void>((resolve) => events.on('active', () => ++active === n && resolve())) };
  }

  async close(): Promise<void> {
    for (const p of this.procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => p.exited));
    await this.closeWorkers();
    for (const c of this.cleanups.splice(0)) await c();
    await Promise.all(this.sandboxes.map((s) => s.close()));
    await deletePrefix(this.redis, this.prefix);
    this.redis.disconnect();
  }
}
