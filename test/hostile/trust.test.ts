import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sandboxConnections, writeConnectionsFile } from '../../scripts/lib/connections.js';
import { buildApi } from '../../src/producer/api/index.js';
import { enqueueCampaign } from '../../src/producer/index.js';
import {
  campaignKeys,
  createLogger,
  HttpClient,
  InputError,
  parseConnections,
  readStatus,
  streamReport,
  type ConnectionRegistry,
  type ReportLine,
} from '../../src/shared/index.js';
import { recordFigures } from '../chaos/figures.js';
import { CREDENTIAL_ENV, alloyFleet } from '../support/fleet.js';
import { setupDeployment } from '../support/deployment.js';
import { keysUnder, redisUrl, testPrefix, waitForCompletion } from '../support/harness.js';

/**
 * The trust boundary (docs/SECURITY.md): a campaign can only use a connection the operator
 * registered, and no request ever leaves for anything else. Each case runs against a capture
 * server that counts what reaches it, so "refused" means "not one request arrived".
 */

const log = createLogger('silent');
const SECRET = 'aws-secret-0123456789-do-not-leak';

interface Capture {
  readonly url: string;
  readonly port: number;
  readonly requests: { url: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/** An HTTP server that records every request; `answer` decides the reply (default 200 `{}`). */
async function capture(answer?: (req: { url: string; headers: IncomingHttpHeaders }) => { status: number; headers?: Record<string, string>; body: string }): Promise<Capture> {
  const requests: Capture['requests'] = [];
  const server: Server = createServer((req, res) => {
    const seen = { url: req.url ?? '', headers: req.headers };
    requests.push(seen);
    req.resume();
    const a = answer?.(seen) ?? { status: 200, body: '{}' };
    res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
    res.end(a.body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const alloyOp = { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' };

/** RELIABILITY.md's "trust" row: hostile attempts made, requests that reached an unregistered origin, secret bytes found in Redis. */
const tally = { attempts: 0, requestsToUnregisteredOrigins: 0, redisValuesScanned: 0, secretBytesFound: 0 };
const SECRETS = [SECRET, ...Object.values(CREDENTIAL_ENV)];

/** Every value under the prefix, whatever its type, searched for any secret. */
async function scanForSecrets(redis: Redis, prefix: string): Promise<void> {
  for (const key of await keysUnder(redis, prefix)) {
    const type = await redis.type(key);
    const values =
      type === 'string' ? [await redis.get(key)] : type === 'hash' ? Object.entries(await redis.hgetall(key)).flat() : type === 'list' ? await redis.lrange(key, 0, -1) : type === 'set' ? await redis.smembers(key) : type === 'zset' ? await redis.zrange(key, 0, -1) : [];
    for (const v of values) {
      tally.redisValuesScanned++;
      for (const secret of SECRETS) if (v?.includes(secret)) tally.secretBytesFound += secret.length;
    }
  }
}

async function expectRefused(p: Promise<unknown>, code = 'CONNECTION_NOT_REGISTERED'): Promise<InputError> {
  tally.attempts++;
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InputError);
  expect((err as InputError).code).toBe(code);
  expect((err as InputError).field).toBe('connection');
  return err as InputError;
}

async function report(redis: Redis, prefix: string, id: string): Promise<ReportLine[]> {
  const out: ReportLine[] = [];
  for await (const line of streamReport(redis, prefix, id)) out.push(line);
  return out;
}

describe('trust boundary: only registered connections, nothing to anywhere else', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 1 }, credentials: true });
  let trap: Capture;
  let registry: ConnectionRegistry;

  beforeAll(() => {
    process.env.AWS_SECRET_ACCESS_KEY = SECRET;
  });
  afterAll(() => {
    delete process.env.AWS_SECRET_ACCESS_KEY;
    recordFigures('trust', { ...tally, tests: 'test/hostile/trust.test.ts' });
  });
  beforeEach(async () => {
    trap = await capture();
    registry = sandboxConnections(t.sandbox.url, Object.keys(CREDENTIAL_ENV));
  });
  // Runs before the deployment closes (vitest runs after-hooks last-registered first): the
  // secrets scan needs the keys, and the workers closed so that nothing more is written.
  afterEach(async () => {
    await t.closeWorkers();
    tally.requestsToUnregisteredOrigins += trap.requests.length;
    await scanForSecrets(t.redis, t.prefix);
    await trap.close();
  });

  it('refuses a credentialRef the registry did not bind to the origin (exfiltration by credentialRef): no request, nothing in Redis', async () => {
    const fleet = alloyFleet(3);
    t.sandbox.load(fleet.fixtures);
    await expectRefused(
      enqueueCampaign({ connection: { baseUrl: t.sandbox.url, credentialRef: 'AWS_SECRET_ACCESS_KEY' }, operation: alloyOp }, fleet.targets, { redis: t.redis, prefix: t.prefix, connections: registry }),
    );
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it('refuses a baseUrl the registry does not hold, even with a registered credentialRef (exfiltration by baseUrl)', async () => {
    await expectRefused(
      enqueueCampaign({ connection: { baseUrl: trap.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: alloyOp }, [{ userId: 'u' }], { redis: t.redis, prefix: t.prefix, connections: registry }),
    );
    // Another path prefix on the registered origin is another endpoint.
    await expectRefused(
      enqueueCampaign({ connection: { baseUrl: `${t.sandbox.url}/elsewhere`, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: alloyOp }, [{ userId: 'u' }], { redis: t.redis, prefix: t.prefix, connections: registry }),
    );
    await expectRefused(enqueueCampaign({ connection: 'not-registered', operation: alloyOp }, [{ userId: 'u' }], { redis: t.redis, prefix: t.prefix, connections: registry }));
    expect(trap.requests).toHaveLength(0);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it('refuses an operation the connection is not registered for', async () => {
    const narrow = parseConnections({ connections: { c: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', operations: ['tallyfy.updateRun'], privateNetwork: true } } });
    await expectRefused(enqueueCampaign({ connection: 'c', operation: alloyOp }, [{ userId: 'u' }], { redis: t.redis, prefix: t.prefix, connections: narrow }));
  });

  it('discovery runs only against a registered connection: an unregistered origin gets no search call', async () => {
    await expectRefused(
      enqueueCampaign(
        {
          connection: { baseUrl: trap.url, credentialRef: 'UPSHIFT_TEST_CONDUCTOR_KEY' },
          operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 },
          targets: { discover: { workflowName: 'flow' } },
        },
        undefined,
        { redis: t.redis, prefix: t.prefix, connections: registry },
      ),
    );
    expect(trap.requests).toHaveLength(0);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it('discovery errors that echo the request carry no credential (to the caller, and so to any log)', async () => {
    // A registered origin that echoes the headers it got back in a 400.
    const echo = await capture((req) => ({ status: 400, body: JSON.stringify({ message: `bad query; x-authorization=${String(req.headers['x-authorization'])} raw ${String(req.headers['x-authorization'])}` }) }));
    try {
      const connections = parseConnections({ connections: { echo: { baseUrl: echo.url, credentialRef: 'UPSHIFT_TEST_CONDUCTOR_KEY', privateNetwork: true } } });
      const err = await enqueueCampaign(
        { id: 'echo', connection: 'echo', operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 }, targets: { discover: { workflowName: 'flow' } } },
        undefined,
        { redis: t.redis, prefix: t.prefix, connections },
      ).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(echo.requests).toHaveLength(1);
      expect(echo.requests[0]!.headers['x-authorization']).toBe(CREDENTIAL_ENV.UPSHIFT_TEST_CONDUCTOR_KEY);
      expect(err).toBeInstanceOf(Error);
      expect(err!.message).toContain('HTTP 400');
      expect(err!.message).not.toContain(CREDENTIAL_ENV.UPSHIFT_TEST_CONDUCTOR_KEY);
    } finally {
      await echo.close();
    }
  });

  it('the HTTP API answers 400 CONNECTION_NOT_REGISTERED naming `connection`, sends nothing, writes nothing', async () => {
    const api = await buildApi({ redis: t.redis, prefix: t.prefix, log, apiToken: 'test-token-0123456789abcdef', connections: registry });
    try {
      const headers = { authorization: 'Bearer test-token-0123456789abcdef', 'content-type': 'application/json' };
      for (const connection of [
        { baseUrl: trap.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
        { baseUrl: t.sandbox.url, credentialRef: 'AWS_SECRET_ACCESS_KEY' },
        { baseUrl: 'http://169.254.169.254', credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
        { baseUrl: 'http://10.0.0.5:8500', credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
      ]) {
        const res = await api.inject({ method: 'POST', url: '/campaigns', headers, payload: JSON.stringify({ connection, operation: alloyOp, targets: [{ userId: 'u' }] }) });
        tally.attempts++;
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({ error: 'invalid_input', code: 'CONNECTION_NOT_REGISTERED', field: 'connection' });
        expect(res.body).not.toContain(SECRET);
      }
      const discovery = await api.inject({
        method: 'POST',
        url: '/campaigns',
        headers,
        payload: JSON.stringify({ connection: { baseUrl: trap.url, credentialRef: 'UPSHIFT_TEST_CONDUCTOR_KEY' }, operation: { type: 'conductor.upgradeExecution', name: 'f', version: 2 }, targets: { discover: { workflowName: 'f' } } }),
      });
      tally.attempts++;
      expect(discovery.statusCode).toBe(400);
      expect(trap.requests).toHaveLength(0);
      expect((await keysUnder(t.redis, t.prefix)).filter((k) => !k.startsWith(`${t.prefix}:targets:`))).toEqual([]);
    } finally {
      await api.close();
    }
  });

  it('a worker re-checks the stored campaign: a spec edited in Redis to point elsewhere fails CONNECTION_NOT_REGISTERED without a call', async () => {
    const fleet = alloyFleet(5);
    t.sandbox.load(fleet.fixtures);
    await enqueueCampaign({ id: 'edited', connection: 'UPSHIFT_TEST_ALLOY_KEY', operation: alloyOp }, fleet.targets, { redis: t.redis, prefix: t.prefix, connections: registry });
    // Whoever can write Redis rewrites the stored connection before any worker runs it.
    const key = campaignKeys(t.prefix, 'edited').spec;
    const stored = JSON.parse((await t.redis.get(key))!);
    stored.connection = { ...stored.connection, baseUrl: trap.url, credentialRef: 'AWS_SECRET_ACCESS_KEY', privateNetwork: true };
    await t.redis.set(key, JSON.stringify(stored));
    await t.startWorker({ concurrency: 5, connections: registry });
    tally.attempts += 5;
    const s = await waitForCompletion(t.prefix, 'edited');
    expect(s).toMatchObject({ total: 5, failed: 5, upgraded: 0 });
    const lines = await report(t.redis, t.prefix, 'edited');
    expect(lines.map((l) => l.reason)).toEqual(Array(5).fill('CONNECTION_NOT_REGISTERED'));
    expect(lines.every((l) => l.attempts === 1)).toBe(true);
    expect(trap.requests).toHaveLength(0);
    expect(t.sandbox.stats().requests).toBe(0);
  });

  it('a worker whose own registry lacks the connection fails its targets without a call', async () => {
    const fleet = alloyFleet(3);
    t.sandbox.load(fleet.fixtures);
    await enqueueCampaign({ id: 'foreign', connection: 'UPSHIFT_TEST_ALLOY_KEY', operation: alloyOp }, fleet.targets, { redis: t.redis, prefix: t.prefix, connections: registry });
    const other = sandboxConnections(t.sandbox.url, ['UPSHIFT_TEST_NECTED_KEY']);
    await t.startWorker({ concurrency: 3, connections: other });
    const s = await waitForCompletion(t.prefix, 'foreign');
    expect(s).toMatchObject({ total: 3, failed: 3 });
    expect((await report(t.redis, t.prefix, 'foreign')).map((l) => l.reason)).toEqual(Array(3).fill('CONNECTION_NOT_REGISTERED'));
    expect(t.sandbox.stats().requests).toBe(0);
  });

  it('egress guard: loopback, private and metadata destinations fail EGRESS_DENIED at connect, literal or by name, never retried', async () => {
    const origins = {
      literal: trap.url,
      byName: `http://localhost:${trap.port}`,
      v6: `http://[::ffff:127.0.0.1]:${trap.port}`,
      metadata: 'http://169.254.169.254',
      rfc1918: 'http://10.0.0.5:8500',
    };
    const connections = parseConnections({
      connections: Object.fromEntries(Object.entries(origins).map(([name, baseUrl]) => [name, { baseUrl, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }])),
    });
    for (const name of Object.keys(origins)) {
      await enqueueCampaign({ id: name, connection: { name, timeoutMs: 2000 }, operation: alloyOp, retry: { attempts: 3, backoffMs: 0 } }, [{ userId: 'u1' }, { userId: 'u2' }], {
        redis: t.redis,
        prefix: t.prefix,
        connections,
      });
    }
    await t.startWorker({ concurrency: 4, connections });
    tally.attempts += 2 * Object.keys(origins).length;
    for (const name of Object.keys(origins)) {
      const s = await waitForCompletion(t.prefix, name);
      expect(s, name).toMatchObject({ total: 2, failed: 2, retries: 0 });
      const lines = await report(t.redis, t.prefix, name);
      expect(lines.map((l) => l.reason), name).toEqual(['EGRESS_DENIED', 'EGRESS_DENIED']);
      expect(lines.every((l) => l.attempts === 1)).toBe(true);
    }
    expect(trap.requests).toHaveLength(0);
  });

  it('redirects are never followed: a 302 to another origin is an answer, and the other origin sees nothing', async () => {
    const bouncer = await capture(() => ({ status: 302, headers: { location: `${trap.url}/steal` }, body: '' }));
    try {
      const http = new HttpClient();
      const res = await http.send({ baseUrl: bouncer.url, privateNetwork: true }, { method: 'GET', segments: ['x'], headers: { 'x-api-key': 'k' } }, 2000);
      await http.close();
      tally.attempts++;
      expect(res.status).toBe(302);
      expect(bouncer.requests).toHaveLength(1);
      expect(trap.requests).toHaveLength(0);
    } finally {
      await bouncer.close();
    }
  });
});

describe('connections registry file', () => {
  it('names the connection and field of a mistake, and refuses a credential value placed where a variable name goes', () => {
    const bad = (entry: Record<string, unknown>) => () => parseConnections({ connections: { 'alloy-prod': { baseUrl: 'https://production.runalloy.com', credentialRef: 'ALLOY_API_KEY', ...entry } } });
    expect(bad({ credentialRef: 'sk_live_51HxQ2aB3cD4eF5gH6iJ7kL8' })).toThrow(/connections\.alloy-prod\.credentialRef.*NAME of an environment variable/s);
    expect(bad({ credentialRef: 'AKIAIOSFODNN7EXAMPLE' })).toThrow(/credentialRef.*looks like a credential value.*alloy-prod/s);
    expect(bad({ baseUrl: 'https://user:pw@production.runalloy.com' })).toThrow(/connections\.alloy-prod\.baseUrl/);
    expect(bad({ apiKey: 'x' })).toThrow(/alloy-prod/);
    expect(bad({ operations: ['alloy.nope'] })).toThrow(/connections\.alloy-prod\.operations\[0\]/);
    expect(() => parseConnections({ connections: { 'alloy-prod': { baseUrl: 'https://production.runalloy.com', credentialRef: 'ALLOY_API_KEY' } } })).not.toThrow();
  });

  const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
  const run = async (args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> => {
    const proc = spawn(process.execPath, [cli, ...args], { env: { ...process.env, UPSHIFT_CONNECTIONS: '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(proc, 'exit')) as [number | null];
    return { code, stderr };
  };

  it('enqueue, serve and worker refuse to start without a registry, saying how to write one', async () => {
    const env = { REDIS_URL: redisUrl(), UPSHIFT_PREFIX: testPrefix(), UPSHIFT_API_TOKEN: 'test-token-0123456789abcdef' };
    const registryFile = writeConnectionsFile(sandboxConnections('http://127.0.0.1:9', ['K']));
    for (const args of [['worker'], ['serve', '--port', '0'], ['enqueue', registryFile]]) {
      const { code, stderr } = await run(args, env);
      expect(code, args[0]).toBe(2);
      expect(stderr, args[0]).toMatch(/UPSHIFT_CONNECTIONS/);
      expect(stderr, args[0]).toMatch(/"connections"/);
    }
  });
});

describe('registry limits are ceilings', () => {
  const t = setupDeployment();

  it('a campaign may lower a registry limit but a higher figure is clipped, with a warning in the status hash', async () => {
    const connections = parseConnections({
      connections: {
        c: {
          baseUrl: 'http://127.0.0.1:9',
          credentialRef: 'UPSHIFT_TEST_ALLOY_KEY',
          privateNetwork: true,
          limits: [{ key: '${connection.baseUrl}', concurrency: 50, rate: { max: 100, perMs: 1000 } }, { key: 'global', concurrency: 7 }],
        },
      },
    });
    await enqueueCampaign(
      {
        id: 'greedy',
        connection: 'c',
        operation: alloyOp,
        limits: [
          { key: '${connection.baseUrl}', concurrency: 100000, rate: { max: 1000, perMs: 1000 } },
          { key: '${target.tenant}', concurrency: 3 },
        ],
      },
      [{ userId: 'u', tenant: 'acme' }],
      { redis: t.redis, prefix: t.prefix, connections },
    );
    const stored = JSON.parse((await t.redis.get(campaignKeys(t.prefix, 'greedy').spec))!);
    expect(stored.limits).toEqual([
      { key: '${connection.baseUrl}', concurrency: 50, rate: { max: 100, perMs: 1000 }, shared: true },
      { key: '${target.tenant}', concurrency: 3 },
      { key: 'global', concurrency: 7, shared: true },
    ]);
    const status = await readStatus(t.redis, t.prefix, 'greedy');
    expect(status!.warnings).toEqual([
      'limits[0].concurrency 100000 clipped to the connection\'s ceiling 50',
      'limits[0].rate 1000/1000 ms clipped to the connection\'s ceiling 100/1000 ms',
    ]);
  });

  it('refuses timeoutMs x attempts over the per-target bound, naming retry.attempts', async () => {
    const connections = sandboxConnections('http://127.0.0.1:9', ['K']);
    const err = await enqueueCampaign({ connection: { name: 'K', timeoutMs: 600_000 }, operation: alloyOp, retry: { attempts: 7 } }, [{ userId: 'u' }], { redis: t.redis, prefix: t.prefix, connections }).then(
      () => undefined,
      (e: InputError) => e,
    );
    expect(err).toBeInstanceOf(InputError);
    expect(err!.field).toBe('retry.attempts');
    expect(err!.message).toMatch(/over the bound of 3600000 ms/);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });
});
