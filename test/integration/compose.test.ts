/**
 * The deployment files: docker-compose.yml validated by Debian's docker-compose 1.29 (which needs
 * no Docker engine), its normalized form checked service by service, and the sample campaign
 * (examples/) run against the real API, sandbox and a worker. The Dockerfile is in dockerfile.test.ts.
 *
 * Over 400 lines, in one file on purpose: both parts read the compose file through the helpers
 * below (the sample campaign takes the workers' credentials from its normalized config, so the
 * sample only passes when compose and sandbox agree), and those helpers serve no other file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { DEFAULTS, loadConfig, loadConnections, parseSpec, readStatus } from '../../src/shared/index.js';
import { deletePrefix, newRedis, redisUrl, testPrefix, waitForCompletion } from '../support/harness.js';
import { testConnections, testConnectionsFile } from '../support/connections.js';
import { setupDeployment, spawnApi } from '../support/deployment.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const examples = join(root, 'examples');

/** Debian's docker-compose on the PATH; the test fails (never skips) without it. */
function dockerCompose(): string {
  const found = (process.env.PATH ?? '')
    .split(delimiter)
    .concat('/usr/bin')
    .map((dir) => join(dir, 'docker-compose'))
    .find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      'docker-compose not found: install Debian\'s docker-compose package (apt-get install docker-compose; version 1.29 validates without a Docker engine)',
    );
  }
  return found;
}

/** The variables the compose file requires (`${VAR:?...}`): it has no default for either. */
const REQUIRED_ENV = { UPSHIFT_API_TOKEN: 'test-api-token-0123', REDIS_PASSWORD: 'test-redis-password-4567' } as const;

/**
 * Runs docker-compose on the repository's file with only `env` (by default the required
 * variables) and an empty env file, so every `${VAR:-default}` shows its default whatever the
 * developer's shell or .env holds.
 */
function compose(args: string[], env: Record<string, string> = REQUIRED_ENV): { status: number | null; stdout: string; stderr: string } {
  const envFile = join(mkdtempSync(join(tmpdir(), 'upshift-compose-')), 'empty.env');
  writeFileSync(envFile, '');
  const r = spawnSync(dockerCompose(), ['--env-file', envFile, '-f', 'docker-compose.yml', ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), ...env },
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Healthcheck {
  test: string[] | string;
  disable?: boolean;
}
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: (Port | string)[];
  volumes?: string[];
  deploy?: { replicas?: number };
  healthcheck?: Healthcheck;
  stop_grace_period?: string;
}
interface Port {
  published: number | string;
  target: number;
  host_ip?: string;
}
interface Connection {
  baseUrl: string;
  credentialRef: string;
  operations?: string[];
  privateNetwork?: boolean;
}
interface ComposeConfig {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** `docker-compose config` prints YAML; PyYAML (a dependency of Debian's docker-compose) reads it. */
function normalizedConfig(): ComposeConfig {
  const out = compose(['config']);
  expect(out.status, out.stderr).toBe(0);
  const python = readFileSync(dockerCompose(), 'utf8').split('\n')[0]!.match(/^#!\s*(\S+)/)?.[1] ?? 'python3';
  const json = spawnSync(python, ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: out.stdout,
    encoding: 'utf8',
  });
  expect(json.status, `PyYAML could not read docker-compose config's output: ${json.stderr}`).toBe(0);
  return JSON.parse(json.stdout) as ComposeConfig;
}

/**
 * A service's published ports. docker-compose 1.29 prints a port with a host address in the short
 * form (`127.0.0.1:3000:3000/tcp`) and one without as `{published, target}`.
 */
function portsOf(s: Service): Port[] {
  return (s.ports ?? []).map((p) => {
    if (typeof p !== 'string') return p;
    const m = /^(?:\[?([^\]]*)\]?:)?(\d+):(\d+)(?:\/\w+)?$/.exec(p);
    expect(m, `port ${p}`).not.toBeNull();
    return { published: Number(m![2]), target: Number(m![3]), ...(m![1] ? { host_ip: m![1] } : {}) };
  });
}

/** The bind mount of `s` whose container path is `target`: `source:target[:mode]` as config prints it. */
function mountOf(s: Service, target: string): { source: string; mode: string } | undefined {
  for (const v of s.volumes ?? []) {
    const [source, t, mode = 'rw'] = v.split(':');
    if (t === target) return { source: source!, mode };
  }
  return undefined;
}

/**
 * A service's environment as seen from the host: UPSHIFT_CONNECTIONS names the mounted file's
 * source in the repository, not its path inside the container.
 */
function hostEnv(s: Service): Record<string, string> {
  const env = { ...s.environment };
  const mount = env.UPSHIFT_CONNECTIONS === undefined ? undefined : mountOf(s, env.UPSHIFT_CONNECTIONS);
  if (mount) env.UPSHIFT_CONNECTIONS = mount.source;
  return env;
}

/** The value after `--flag` in a command. */
function flag(command: string[] | undefined, name: string): string | undefined {
  const i = (command ?? []).indexOf(name);
  return i === -1 ? undefined : command![i + 1];
}

/** Compose durations as `docker-compose config` prints them (`40s`, `1m30s`, `500ms`) in ms. */
function durationMs(d: string): number {
  let ms = 0;
  for (const [, n, unit] of d.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) ms += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms']!;
  return ms;
}

const nodeProbe = (hc: Healthcheck | undefined): string | undefined =>
  Array.isArray(hc?.test) && hc.test[0] === 'CMD' && hc.test[1] === 'node' && hc.test[2] === '-e' ? hc.test[3] : undefined;

function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  return once(server, 'listening').then(() => {
    const { port } = server.address() as AddressInfo;
    return new Promise<number>((resolve) => server.close(() => resolve(port)));
  });
}

function runProbe(script: string): Promise<number | null> {
  const p = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  return once(p, 'exit').then(([code]) => code as number | null);
}

describe('docker-compose.yml', () => {
  let config: ComposeConfig;
  beforeAll(() => {
    config = normalizedConfig();
  });

  it('validates with docker-compose config -q', () => {
    const r = compose(['config', '-q']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('has redis, api, worker and sandbox, each with a healthcheck', () => {
    expect(Object.keys(config.services).sort()).toEqual(['api', 'redis', 'sandbox', 'worker']);
    for (const [name, s] of Object.entries(config.services)) {
      expect(s.healthcheck?.disable, name).not.toBe(true);
      expect(Array.isArray(s.healthcheck?.test) && s.healthcheck.test.length > 1, `${name} has no healthcheck`).toBe(true);
    }
  });

  it('runs Redis 7 with AOF (fsync every second) on a named volume', () => {
    const redis = config.services.redis!;
    expect(redis.image).toMatch(/^redis:7(\.|$|-)/);
    expect(flag(redis.command, '--appendonly')).toBe('yes');
    expect(flag(redis.command, '--appendfsync')).toBe('everysec');
    const data = (redis.volumes ?? []).map((v) => v.split(':')).find(([, target]) => target === '/data');
    expect(data, 'a volume mounted at /data').toBeDefined();
    expect(Object.keys(config.volumes ?? {})).toContain(data![0]);
  });

  it('publishes the API on 127.0.0.1:3000 only, with the token from the environment', () => {
    const api = config.services.api!;
    expect(api.command?.slice(0, 1)).toEqual(['serve']);
    expect(flag(api.command, '--host')).toBe('0.0.0.0');
    expect(flag(api.command, '--port')).toBe('3000');
    expect(api.command).not.toContain('--insecure-no-auth');
    expect(portsOf(api)).toEqual([{ published: 3000, target: 3000, host_ip: '127.0.0.1' }]);
    expect(api.environment?.UPSHIFT_API_TOKEN).toBe(REQUIRED_ENV.UPSHIFT_API_TOKEN);
  });

  it('refuses to start without UPSHIFT_API_TOKEN, naming it', () => {
    for (const value of [undefined, '']) {
      const env: Record<string, string> = { REDIS_PASSWORD: REQUIRED_ENV.REDIS_PASSWORD };
      if (value !== undefined) env.UPSHIFT_API_TOKEN = value;
      const r = compose(['config', '-q'], env);
      expect(r.status, `UPSHIFT_API_TOKEN=${String(value)}`).not.toBe(0);
      expect(r.stderr).toMatch(/set UPSHIFT_API_TOKEN/);
    }
    // No fallback anywhere in the file: every use is `${UPSHIFT_API_TOKEN:?...}`.
    const raw = readFileSync(join(root, 'docker-compose.yml'), 'utf8');
    expect(raw).not.toMatch(/\$\{UPSHIFT_API_TOKEN:?-/);
    expect(raw).not.toContain('dev-only-insecure-token');
  });

  it('refuses to start without REDIS_PASSWORD, naming it', () => {
    for (const value of [undefined, '']) {
      const env: Record<string, string> = { UPSHIFT_API_TOKEN: REQUIRED_ENV.UPSHIFT_API_TOKEN };
      if (value !== undefined) env.REDIS_PASSWORD = value;
      const r = compose(['config', '-q'], env);
      expect(r.status, `REDIS_PASSWORD=${String(value)}`).not.toBe(0);
      expect(r.stderr).toMatch(/set REDIS_PASSWORD/);
    }
    const raw = readFileSync(join(root, 'docker-compose.yml'), 'utf8');
    expect(raw).not.toMatch(/\$\{REDIS_PASSWORD:?-/);
  });

  it('runs Redis with requirepass, and every service reaches it with the password', () => {
    const redis = config.services.redis!;
    expect(flag(redis.command, '--requirepass')).toBe(REQUIRED_ENV.REDIS_PASSWORD);
    // The healthcheck's redis-cli authenticates through REDISCLI_AUTH (no password on its command line).
    expect(redis.environment?.REDISCLI_AUTH).toBe(REQUIRED_ENV.REDIS_PASSWORD);
    expect(portsOf(redis)).toEqual([{ published: 6379, target: 6379, host_ip: '127.0.0.1' }]);
    const users = Object.entries(config.services).filter(([, s]) => s.environment?.REDIS_URL !== undefined);
    expect(users.map(([name]) => name).sort()).toEqual(['api', 'worker']);
    for (const [name, s] of users) {
      const url = new URL(s.environment!.REDIS_URL!);
      expect(url.protocol, name).toBe('redis:');
      expect(url.hostname, name).toBe('redis');
      expect(url.port, name).toBe('6379');
      expect(decodeURIComponent(url.password), name).toBe(REQUIRED_ENV.REDIS_PASSWORD);
      expect(() => loadConfig(s.environment!), name).not.toThrow();
    }
  });

  it('publishes every host port on 127.0.0.1 only', () => {
    for (const [name, s] of Object.entries(config.services)) {
      for (const p of portsOf(s)) expect(p.host_ip, `${name} publishes ${p.published}`).toBe('127.0.0.1');
    }
    expect(portsOf(config.services.sandbox!)).toEqual([{ published: 4010, target: 4010, host_ip: '127.0.0.1' }]);
  });

  it('gives api and worker UPSHIFT_CONNECTIONS: a read-only mount of a registry in the repository', () => {
    for (const name of ['api', 'worker']) {
      const s = config.services[name]!;
      const inContainer = s.environment?.UPSHIFT_CONNECTIONS;
      expect(inContainer, `${name} UPSHIFT_CONNECTIONS`).toMatch(/^\//);
      const mount = mountOf(s, inContainer!);
      expect(mount, `${name} mounts ${inContainer}`).toBeDefined();
      expect(mount!.mode, `${name} mounts ${inContainer} read-only`).toBe('ro');
      expect(mount!.source.startsWith(root), `${mount!.source} is in the repository`).toBe(true);
      expect(existsSync(mount!.source), mount!.source).toBe(true);
      const registry = JSON.parse(readFileSync(mount!.source, 'utf8')) as { connections?: unknown };
      expect(typeof registry.connections === 'object' && registry.connections !== null && !Array.isArray(registry.connections)).toBe(true);
    }
    expect(mountOf(config.services.api!, config.services.api!.environment!.UPSHIFT_CONNECTIONS!)!.source).toBe(
      mountOf(config.services.worker!, config.services.worker!.environment!.UPSHIFT_CONNECTIONS!)!.source,
    );
  });

  it('registers the sample\'s connection, and one sandbox connection per credential the compose file gives', async () => {
    const worker = config.services.worker!;
    const source = mountOf(worker, worker.environment!.UPSHIFT_CONNECTIONS!)!.source;
    const { connections } = JSON.parse(readFileSync(source, 'utf8')) as { connections: Record<string, Connection> };
    const { SANDBOX_KEYS } = await import('../../src/sandbox/index.js');
    const sandboxPort = flag(config.services.sandbox!.command, '--port');
    for (const [name, c] of Object.entries(connections)) {
      const url = new URL(c.baseUrl);
      expect(`${url.hostname}:${url.port}`, name).toBe(`sandbox:${sandboxPort}`);
      // The sandbox is on the compose network, a private address: allowed explicitly.
      expect(c.privateNetwork, name).toBe(true);
      expect(Object.values(SANDBOX_KEYS), `${name}: ${c.credentialRef} is a sandbox key in the worker's environment`).toContain(
        worker.environment?.[c.credentialRef],
      );
      expect(config.services.api!.environment?.[c.credentialRef], name).toBe(worker.environment?.[c.credentialRef]);
    }
    const refs = Object.values(connections).map((c) => c.credentialRef);
    expect(new Set(refs).size, 'one entry per credentialRef').toBe(refs.length);
    expect(refs.sort()).toEqual(Object.keys(worker.environment ?? {}).filter((k) => /_API_KEY$/.test(k)).sort());
    // The sample spec's connection is the entry named `sandbox` (by name, or spelled out equal to it).
    const raw = JSON.parse(readFileSync(join(examples, 'sample-spec.json'), 'utf8')) as {
      connection: string | { baseUrl: string; credentialRef: string };
      operation: { type: string };
    };
    const entry = connections.sandbox;
    expect(entry, 'a connection named "sandbox"').toBeDefined();
    if (typeof raw.connection === 'string') expect(raw.connection).toBe('sandbox');
    else expect(raw.connection).toMatchObject({ baseUrl: entry!.baseUrl, credentialRef: entry!.credentialRef });
    if (entry!.operations) expect(entry!.operations).toContain(raw.operation.type);
  });

  it('runs two workers with metrics, stopped no sooner than their shutdown timeout allows', () => {
    const worker = config.services.worker!;
    expect(worker.deploy?.replicas).toBe(2);
    expect(worker.command?.[0]).toBe('worker');
    expect(flag(worker.command, '--metrics-port')).toBe('9464');
    const shutdownMs = Number(flag(worker.command, '--shutdown-timeout-ms') ?? DEFAULTS.shutdownTimeoutMs);
    expect(worker.stop_grace_period, 'stop_grace_period').toBeDefined();
    expect(durationMs(worker.stop_grace_period!)).toBeGreaterThan(shutdownMs);
  });

  it('serves the workers\' /metrics on loopback only: the healthcheck reaches it, the network does not', async () => {
    const worker = config.services.worker!;
    expect(flag(worker.command, '--metrics-host') ?? '127.0.0.1').toBe('127.0.0.1');
    // The compose command as it is, on a free port, against the test Redis.
    const port = await freePort();
    const prefix = testPrefix();
    const command = worker.command!.map((a, i, all) => (all[i - 1] === '--metrics-port' ? String(port) : a));
    const p = spawn(process.execPath, [cli, ...command], {
      env: { ...process.env, ...hostEnv(worker), REDIS_URL: redisUrl(), UPSHIFT_PREFIX: prefix, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(p, 'exit');
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        p.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('upshift worker ready')) resolve();
        });
        void exited.then(([code]) => reject(new Error(`upshift worker exited (${code}) before it was ready`)));
      });
      expect(await runProbe(nodeProbe(worker.healthcheck)!.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`))).toBe(0);
      // Any address of this machine's that is not loopback is refused.
      const outside = Object.values(networkInterfaces())
        .flat()
        .find((a) => a && !a.internal && a.family === 'IPv4');
      if (outside) await expect(fetch(`http://${outside.address}:${port}/healthz`)).rejects.toThrow();
    } finally {
      p.kill('SIGTERM');
      await exited;
      const redis = newRedis();
      await deletePrefix(redis, prefix);
      redis.disconnect();
    }
  });

  it('probes each service where its command listens', () => {
    const { api, worker, sandbox } = config.services;
    expect(nodeProbe(api!.healthcheck)).toContain(`http://127.0.0.1:${flag(api!.command, '--port')}/healthz`);
    expect(nodeProbe(worker!.healthcheck)).toContain(`http://127.0.0.1:${flag(worker!.command, '--metrics-port')}/healthz`);
    expect(sandbox!.command?.[0]).toBe('sandbox');
    expect(flag(sandbox!.command, '--host')).toBe('0.0.0.0');
    expect(nodeProbe(sandbox!.healthcheck)).toContain(`http://127.0.0.1:${flag(sandbox!.command, '--port')}/__sandbox/`);
    expect(config.services.redis!.healthcheck!.test).toContain('redis-cli ping | grep -q PONG');
  });

  it('has node probes that pass on 2xx and fail on an error status or no answer', async () => {
    let healthy = true;
    const server = createServer((_req, res) => res.writeHead(healthy ? 200 : 503).end());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    try {
      for (const name of ['api', 'worker', 'sandbox']) {
        const script = nodeProbe(config.services[name]!.healthcheck);
        expect(script, name).toBeDefined();
        const local = script!.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`);
        healthy = true;
        expect(await runProbe(local), `${name} probe, healthy`).toBe(0);
        healthy = false;
        expect(await runProbe(local), `${name} probe, 503`).toBe(1);
        expect(await runProbe(script!.replace(/127\.0\.0\.1:\d+/, '127.0.0.1:1')), `${name} probe, refused`).toBe(1);
      }
    } finally {
      server.close();
    }
  });

  it('gives every Upshift service a command and environment the CLI accepts', () => {
    for (const name of ['api', 'worker', 'sandbox']) {
      const s = config.services[name]!;
      const env = hostEnv(s);
      // `--help` after the service's own flags: the CLI rejects an unknown command or flag (exit 2)
      // before it would print the help (exit 0).
      const r = spawnSync(process.execPath, [cli, ...s.command!, '--help'], { encoding: 'utf8', env: { ...process.env, ...env } });
      expect(r.stderr, `${name}: upshift ${s.command!.join(' ')}`).toBe('');
      expect(r.status, `${name}: upshift ${s.command!.join(' ')}`).toBe(0);
      expect(() => loadConfig(env), name).not.toThrow();
      expect(s.image).toBe(config.services.api!.image);
    }
  });

  it('gives the workers the credential the sample spec names, with the sandbox\'s key', async () => {
    // Resolved against the registry the compose file mounts for the workers.
    const connections = loadConnections({ UPSHIFT_CONNECTIONS: hostEnv(config.services.worker!).UPSHIFT_CONNECTIONS });
    const spec = parseSpec(readFileSync(join(examples, 'sample-spec.json'), 'utf8'), 'examples/sample-spec.json', connections);
    const { SANDBOX_KEYS } = await import('../../src/sandbox/index.js');
    expect(config.services.worker!.environment?.[spec.connection.credentialRef]).toBe(SANDBOX_KEYS.alloy);
    const url = new URL(spec.connection.baseUrl);
    expect(url.hostname).toBe('sandbox');
    expect(url.port).toBe(flag(config.services.sandbox!.command, '--port'));
  });
});

describe('the sample campaign (examples/)', () => {
  const t = setupDeployment({ sandbox: {} });
  let workerEnv: Record<string, string>;
  const savedEnv = { ...process.env };

  beforeAll(() => {
    // The workers' credential values as the compose file gives them, so the sample only works
    // when docker-compose.yml and the sandbox agree. Only the credentials: REDIS_URL and
    // UPSHIFT_CONNECTIONS name places inside the compose network.
    workerEnv = Object.fromEntries(
      Object.entries(normalizedConfig().services.worker!.environment ?? {}).filter(([k]) => /_API_KEY$/.test(k)),
    );
    expect(Object.keys(workerEnv)).not.toHaveLength(0);
    Object.assign(process.env, workerEnv);
  });
  afterAll(() => {
    for (const k of Object.keys(workerEnv)) {
      if (savedEnv[k] === undefined) delete process.env[k];
      else process.env[k] = savedEnv[k];
    }
  });
  const sampleSpec = () => JSON.parse(readFileSync(join(examples, 'sample-spec.json'), 'utf8')) as Record<string, any>;
  const sampleTargets = () =>
    readFileSync(join(examples, 'sample-targets.ndjson'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as unknown);

  it('upgrades most users and fails the rest with named reasons', async () => {
    t.sandbox.load(JSON.parse(readFileSync(join(examples, 'sample-fixtures.json'), 'utf8')));
    const spec = sampleSpec();
    spec.connection.baseUrl = t.sandbox.url;
    // The sample is paced for watching (a rate on the connection); the outcomes do not depend on pace.
    spec.limits = (spec.limits as { rate?: unknown }[]).map(({ rate: _rate, ...rest }) => rest);
    const connections = testConnections(t.sandbox.url);
    await t.startWorker({ connections, concurrency: 20 });
    const { campaignId, total } = await enqueueCampaign(spec, sampleTargets(), { redis: t.redis, prefix: t.prefix, connections });
    expect(total).toBe(600);
    const done = await waitForCompletion(t.prefix, campaignId);
    expect(done).toMatchObject({ state: 'completed', upgraded: 575, skipped: 0, failed: 25 });
    expect(done.reasons).toEqual({ REINSTALL_REQUIRED: 14, FORBIDDEN: 6, NOT_FOUND: 5 });
  });

  it('sample-campaign.sh loads the fixtures and enqueues through the API', async () => {
    const token = `test-${t.prefix}`;
    const api = await spawnApi(
      ['--host', '127.0.0.1', '--port', '0'],
      // The spec's connection as the script rewrites it (SPEC_BASE_URL): the sandbox of this test.
      { ...process.env, REDIS_URL: redisUrl(), UPSHIFT_PREFIX: t.prefix, UPSHIFT_API_TOKEN: token, LOG_LEVEL: 'warn', UPSHIFT_CONNECTIONS: testConnectionsFile(t.sandbox.url) },
    );
    try {
      const apiUrl = api.url;
      const run = (env: Record<string, string>) => {
        const p = spawn('bash', [join(examples, 'sample-campaign.sh')], {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), API_URL: apiUrl, SANDBOX_URL: t.sandbox.url, WAIT_S: '30', ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        return once(p, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
      };

      // The compose file has no default token, so neither has the script.
      const tokenless = await run({ CAMPAIGN_ID: 'tokenless' });
      expect(tokenless.code).toBe(1);
      expect(tokenless.stderr).toContain('UPSHIFT_API_TOKEN is not set');
      expect(await readStatus(t.redis, t.prefix, 'tokenless')).toBeNull();

      const refused = await run({ UPSHIFT_API_TOKEN: 'wrong', CAMPAIGN_ID: 'refused' });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('the API refused the token (HTTP 401); export UPSHIFT_API_TOKEN');

      const ok = await run({ UPSHIFT_API_TOKEN: token, SPEC_BASE_URL: t.sandbox.url, CAMPAIGN_ID: 'sample-test' });
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      expect(ok.stdout).toContain('Campaign sample-test is running');
      expect(ok.stdout).toContain('dashboard   http://localhost:3000');
      expect(t.sandbox.state().alloy?.installs).toHaveLength(595);
      const status = await readStatus(t.redis, t.prefix, 'sample-test');
      expect(status).toMatchObject({ id: 'sample-test', total: 600, state: 'running' });
      expect(await readStatus(t.redis, t.prefix, 'refused')).toBeNull();
      const stored = await fetch(`${apiUrl}/campaigns/sample-test`, { headers: { authorization: `Bearer ${token}` } });
      expect(stored.status).toBe(200);
    } finally {
      api.proc.kill('SIGTERM');
      await api.exited;
    }
  });
});
