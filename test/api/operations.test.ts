import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { OpenAPIBackend } from 'openapi-backend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/producer/api/index.js';
import { createApiMetrics, createLogger, createRedis } from '../../src/shared/index.js';
import { redisUrl, testPrefix } from '../support/harness.js';
import { noConnections } from '../support/connections.js';
import { AUTH, startTestApi, TOKEN, type TestApi } from './support.js';

/** A TCP relay to the test Redis that can be cut and restored, to make Redis unreachable on demand. */
async function startRelay(): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  const target = new URL(redisUrl());
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    server = createServer((client) => {
      const upstream = connect(Number(target.port), target.hostname);
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  };
  const cut = async () => {
    const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  await listen();
  return { port, cut, restore: listen, close: cut };
}

describe('health, readiness, metrics', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(() => api.close());

  it('/healthz answers 200 while the process is up', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('/readyz is 200 while Redis answers, 503 while it is unreachable, 200 again once it is back', async () => {
    const relay = await startRelay();
    const redis = createRedis(`redis://127.0.0.1:${relay.port}`);
    redis.on('error', () => undefined);
    await redis.connect();
    const app = await buildApi({ redis, prefix: testPrefix(), log: createLogger('silent'), apiToken: TOKEN, readyTimeoutMs: 500, connections: noConnections() });
    const ready = () => app.inject({ method: 'GET', url: '/readyz' });
    try {
      expect((await ready()).statusCode).toBe(200);
      const closed = new Promise((resolve) => redis.once('close', resolve));
      await relay.cut();
      await closed;
      const down = await ready();
      expect(down.statusCode).toBe(503);
      expect(down.json()).toEqual({ status: 'unavailable' });
      const back = new Promise((resolve) => redis.once('ready', resolve));
      await relay.restore();
      await back;
      expect((await ready()).statusCode).toBe(200);
    } finally {
      await app.close();
      redis.disconnect();
      await relay.close();
    }
  });

  it('/metrics serves the API metrics in their content type, behind the token', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/metrics', headers: AUTH });
    expect(res.statusCode).toBe(200);
    const expected = createApiMetrics({ redis: api.redis, prefix: api.prefix });
    expect(res.headers['content-type']).toBe(expected.contentType);
    await expected.close();
    expect(res.body).toContain('upshift_');
    expect((await api.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
  });
});

/**
 * OpenAPI 3.0 takes `exclusiveMinimum`/`exclusiveMaximum` from JSON Schema draft 4 (a boolean
 * beside `minimum`), which is what the document says; openapi-schema-validator's 3.0 meta-schema
 * takes them from draft 7 (a number) instead. The validator gets the draft-7 spelling of the
 * same bound, so it judges everything else.
 */
function draft7Bounds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(draft7Bounds);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = draft7Bounds(v);
  for (const [flag, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    if (out[flag] === true) {
      out[flag] = out[bound];
      delete out[bound];
    } else if (out[flag] === false) delete out[flag];
  }
  return out;
}

describe('OpenAPI document and /docs', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(() => api.close());

  const ROUTES = [
    ['post', '/campaigns'],
    ['get', '/campaigns'],
    ['get', '/campaigns/{id}'],
    ['get', '/campaigns/{id}/limits'],
    ['get', '/campaigns/{id}/notifications'],
    ['get', '/campaigns/{id}/report'],
    ['post', '/campaigns/{id}/pause'],
    ['post', '/campaigns/{id}/resume'],
    ['post', '/campaigns/{id}/cancel'],
    ['post', '/campaigns/{id}/promote'],
    ['post', '/campaigns/{id}/retry'],
    ['post', '/campaigns/{id}/undo'],
    ['get', '/healthz'],
    ['get', '/readyz'],
    ['get', '/metrics'],
  ] as const;

  it('/openapi.json is a valid OpenAPI 3 document with every route, and its spec schema is the zod one', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/openapi.json', headers: AUTH });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\.0\.\d$/);
    // openapi-backend validates the document against the OpenAPI 3.0 schema (strict: throws if invalid).
    const rollout = doc.paths['/campaigns'].post.requestBody.content['application/json'].schema.properties.rollout;
    expect(rollout.properties.steps.items.anyOf[0]).toMatchObject({ minimum: 0, exclusiveMinimum: true });
    const backend = new OpenAPIBackend({ definition: draft7Bounds(doc) as never, strict: true, validate: true, quick: false });
    await backend.init();
    const paths = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
    expect(paths.sort()).toEqual(ROUTES.map(([m, p]) => `${m} ${p}`).sort());
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    const ids = ROUTES.map(([m, p]) => doc.paths[p][m].operationId as string);
    expect(new Set(ids).size).toBe(ROUTES.length);
    expect(doc.security).toEqual([{ bearer: [] }, { cookie: [] }]);

    // The request body schema, generated from the spec's zod schema, accepts a good spec and refuses a bad one.
    const request = (body: unknown) => ({ method: 'post', path: '/campaigns', headers: { 'content-type': 'application/json' }, body });
    const good = {
      connection: { baseUrl: 'https://api.example', credentialRef: 'KEY' },
      operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' },
      targets: [{ userId: 'u1' }],
    };
    expect(backend.validateRequest(request(good)).errors ?? []).toEqual([]);
    expect(backend.validateRequest(request({ ...good, colour: 'red' })).valid).toBe(false);
    expect(backend.validateRequest(request({ ...good, operation: { type: 'alloy.upgradeWorkflow' } })).valid).toBe(false);
    expect(backend.validateRequest({ method: 'get', path: '/campaigns/c1/report', query: { outcome: 'failed' }, headers: {} }).valid).toBe(true);
    expect(backend.validateRequest({ method: 'get', path: '/campaigns/c1/report', query: { outcome: 'done' }, headers: {} }).valid).toBe(false);
    const undo = (body: unknown) => ({ method: 'post', path: '/campaigns/c1/undo', headers: { 'content-type': 'application/json' }, body });
    expect(backend.validateRequest(undo({ dryRun: true })).errors ?? []).toEqual([]);
    expect(backend.validateRequest(undo({ dryRun: 'yes' })).valid).toBe(false);
    expect(backend.validateRequest(undo({ colour: 'red' })).valid).toBe(false);
    expect(Object.keys(doc.paths['/campaigns/{id}/undo'].post.responses).sort()).toEqual(['200', '201', '400', '401', '404', '409', '410']);
  });

  it('/docs renders the document with Swagger UI served from this server (no CDN)', async () => {
    const page = await api.app.inject({ method: 'GET', url: '/docs/', headers: AUTH });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('swagger-ui');
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      expect(asset, 'a local path').toMatch(/^(\.\/|\/docs\/)/);
      const res = await api.app.inject({ method: 'GET', url: new URL(asset, 'http://x/docs/').pathname, headers: AUTH });
      expect(res.statusCode, asset).toBe(200);
    }
  });
});
