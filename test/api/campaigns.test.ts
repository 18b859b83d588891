import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSandbox } from '../../src/sandbox/index.js';
import { campaignKeys, readStatus } from '../../src/shared/index.js';
import { alloyFleet } from '../support/fleet.js';
import { waitForCompletion, waitForState } from '../support/harness.js';
import { AUTH, campaignData, ndjson, startTestApi, until, type TestApi } from './support.js';
import { testConnections } from '../support/connections.js';
import { setupDeployment } from '../support/deployment.js';

const NDJSON = { ...AUTH, 'content-type': 'application/x-ndjson' };
const JSON_BODY = { ...AUTH, 'content-type': 'application/json' };

/** A spec whose platform nobody calls (no worker runs in these tests). */
const idle = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  connection: { baseUrl: 'http://127.0.0.1:9', credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
  ...extra,
});
/** The registry of the tests that only enqueue: the idle spec's platform. */
const idleConnections = () => testConnections('http://127.0.0.1:9');
const users = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ userId: `user-${from + i}` }));

describe('POST /campaigns and validation', () => {
  let api: TestApi;
  beforeEach(async () => {
    api = await startTestApi({ connections: idleConnections() });
  });
  afterEach(() => api.close());

  const post = (payload: string | object, headers: Record<string, string> = JSON_BODY) =>
    api.app.inject({ method: 'POST', url: '/campaigns', headers, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });
  const nothingInRedis = async () => expect(await campaignData(api.redis, api.prefix)).toEqual([]);

  it('JSON with inline targets: 201; the same spec again is 200 created:false; another spec under the id is 409', async () => {
    const spec = idle('json-1', { targets: [...users(3), { userId: 'user-0' }] });
    const first = await post(spec);
    expect(first.statusCode).toBe(201);
    expect(first.json()).toEqual({ campaignId: 'json-1', total: 3, created: true });
    const again = await post(spec);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ campaignId: 'json-1', total: 3, created: false });
    const other = await post({ ...spec, name: 'another' });
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ error: 'conflict', message: expect.stringContaining('already exists with a different spec') });
    expect(await readStatus(api.redis, api.prefix, 'json-1')).toMatchObject({ state: 'running', total: 3, pending: 3 });
  });

  it('a campaign without an id gets one', async () => {
    const { id: _none, ...spec } = idle('x', { targets: users(2) });
    const res = await post(spec);
    expect(res.statusCode).toBe(201);
    expect(res.json().campaignId).toMatch(/^c-/);
  });

  it('NDJSON: spec on line 1, targets after (blank lines, CRLF and duplicates allowed)', async () => {
    const body = `${JSON.stringify(idle('nd-1'))}\r\n\n${ndjson(users(5))}{"userId":"user-1"}\r\n`;
    const res = await post(body, NDJSON);
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ campaignId: 'nd-1', total: 5, created: true });
    const report = await api.app.inject({ method: 'GET', url: '/campaigns/nd-1/report?outcome=pending', headers: AUTH });
    expect(report.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    const lines = report.body.trim().split('\n').map((l) => JSON.parse(l) as { target: string; outcome: string });
    expect(lines.map((l) => l.outcome)).toEqual(Array(5).fill('pending'));
    expect(new Set(lines.map((l) => l.target)).size).toBe(5);
  });

  it('NDJSON is staged while the body still streams (not buffered)', async () => {
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = api.app.server.address() as AddressInfo;
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/campaigns', headers: NDJSON }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.write(JSON.stringify(idle('stream-1')) + '\n' + ndjson(users(1500)));
      // The first 1,000 targets (one staging chunk) reach Redis before the body is complete.
      until(() => api.redis.llen(campaignKeys(api.prefix, 'stream-1').group(0)), (n) => n >= 1000, 'staged while streaming').then(
        () => req.end(ndjson(users(500, 1500))),
        reject,
      );
    });
    const { status, body } = await answer;
    expect(status).toBe(201);
    expect(JSON.parse(body)).toEqual({ campaignId: 'stream-1', total: 2000, created: true });
  });

  it('400 for a bad spec, with every zod issue as {path, message}; nothing enqueued', async () => {
    const res = await post({
      id: 'bad spec!',
      connection: { baseUrl: 'ftp://x', credentialRef: 'ALLOY' },
      operation: { type: 'alloy.upgradeWorkflow' },
      targets: users(1),
    });
    expect(res.statusCode).toBe(400);
    const body = res.json();
    expect(body).toMatchObject({ error: 'invalid_input', source: 'spec' });
    expect(body.issues).toEqual(
      expect.arrayContaining([
        { path: ['id'], message: 'must match ^[A-Za-z0-9_-]{1,64}$' },
        { path: ['connection', 'baseUrl'], message: 'must be an http(s) URL without query, fragment or credentials' },
        expect.objectContaining({ path: ['operation', 'workflowId'] }),
      ]),
    );
    await nothingInRedis();
  });

  it('400 for a bad inline target names its place in the spec', async () => {
    const res = await post(idle('inline-bad', { targets: [{ userId: 'a' }, { user: 'b' }] }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      source: 'spec targets',
      line: 2,
      field: 'userId',
      issues: [{ path: ['targets', 1, 'userId'], message: 'is required for alloy.upgradeWorkflow' }],
    });
    await nothingInRedis();
  });

  it('400 for a bad NDJSON target names the line; what was staged before it is removed', async () => {
    // 1,500 good targets (a staging chunk reaches Redis), then a bad one on line 1,502.
    const body = JSON.stringify(idle('nd-bad')) + '\n' + ndjson(users(1500)) + '{"userId":""}\n' + ndjson(users(10, 2000));
    const res = await post(body, NDJSON);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: 'invalid_input',
      source: 'request body',
      line: 1502,
      field: 'userId',
      issues: [{ path: ['userId'], message: 'must not be empty', line: 1502 }],
    });
    expect(res.json().message).toContain('line 1502');
    await nothingInRedis();
  });

  it('400 for NDJSON that is not JSON, for a bad spec line, and for an empty body', async () => {
    const notJson = await post(JSON.stringify(idle('nd-json')) + '\n{"userId":"a"}\n{oops\n', NDJSON);
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).toMatchObject({ line: 3, issues: [{ path: [], line: 3, message: expect.stringContaining('not valid JSON') }] });

    const badSpec = await post(JSON.stringify({ ...idle('nd-spec'), retry: { attempts: 0 } }) + '\n{"userId":"a"}\n', NDJSON);
    expect(badSpec.statusCode).toBe(400);
    expect(badSpec.json()).toMatchObject({ source: 'spec', issues: [{ path: ['retry', 'attempts'], line: 1 }] });

    const empty = await post('\n\n', NDJSON);
    expect(empty.statusCode).toBe(400);
    expect(empty.json().message).toContain('the first line must be the campaign spec');

    const both = await post(JSON.stringify(idle('nd-both', { targets: users(1) })) + '\n{"userId":"a"}\n', NDJSON);
    expect(both.statusCode).toBe(400);
    expect(both.json().message).toContain('both inline and as a separate list');
    await nothingInRedis();
  });

  it('400 for a body that is not JSON, 415 for another content type', async () => {
    const broken = await post('{"id":');
    expect(broken.statusCode).toBe(400);
    expect(broken.json().error).toBe('invalid_input');
    const text = await post('hello', { ...AUTH, 'content-type': 'text/plain' });
    expect(text.statusCode).toBe(415);
    expect(text.json().error).toBe('unsupported_media_type');
  });
});

describe('body size limits', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ bodyLimitBytes: 4096, streamLimitBytes: 40_000, connections: idleConnections() });
  });
  afterAll(() => api.close());

  it('413 for a JSON body over the limit; nothing enqueued', async () => {
    const res = await api.app.inject({ method: 'POST', url: '/campaigns', headers: JSON_BODY, payload: JSON.stringify(idle('big', { targets: users(500) })) });
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toBe('payload_too_large');
    expect(await campaignData(api.redis, api.prefix)).toEqual([]);
  });

  it('413 for an NDJSON body that passes the limit while streaming; what was staged is removed', async () => {
    // ~26 bytes a line: the first 1,000 targets are staged before the 40,000th byte arrives.
    const body = JSON.stringify(idle('big-stream')) + '\n' + ndjson(users(3000));
    const res = await api.app.inject({
      method: 'POST',
      url: '/campaigns',
      headers: NDJSON,
      payload: Readable.from(
        (function* () {
          for (let i = 0; i < body.length; i += 1000) yield body.slice(i, i + 1000);
        })(),
      ),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ error: 'payload_too_large', message: expect.stringContaining('40000 bytes') });
    expect(await campaignData(api.redis, api.prefix)).toEqual([]);
  });

  it('413 at once when Content-Length says the body is too large', async () => {
    const body = JSON.stringify(idle('declared')) + '\n' + ndjson(users(3000));
    const res = await api.app.inject({ method: 'POST', url: '/campaigns', headers: NDJSON, payload: body });
    expect(res.statusCode).toBe(413);
    expect(await campaignData(api.redis, api.prefix)).toEqual([]);
  });
});

describe('reading and controlling campaigns', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 5 }, urls: ['http://127.0.0.1:9'], credentials: true });
  let api: TestApi;
  beforeEach(async () => {
    api = await startTestApi(t.producer);
  });
  afterEach(() => api.close());

  const work = (concurrency = 4) => t.startWorker({ concurrency });
  const live = (id: string, extra: Record<string, unknown> = {}) => ({
    ...idle(id, extra),
    connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 5000 },
  });
  const call = (method: 'GET' | 'POST', url: string, payload?: object) =>
    api.app.inject({ method, url, headers: payload === undefined ? AUTH : JSON_BODY, ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }) });
  const create = async (spec: object) => expect((await call('POST', '/campaigns', spec)).statusCode).toBe(201);

  it('404 for an unknown campaign on every route, and for an id that cannot exist', async () => {
    for (const [method, url] of [
      ['GET', '/campaigns/nope'],
      ['GET', '/campaigns/nope/report'],
      ['GET', '/campaigns/nope/limits'],
      ['POST', '/campaigns/nope/pause'],
      ['POST', '/campaigns/nope/resume'],
      ['POST', '/campaigns/nope/cancel'],
      ['POST', '/campaigns/nope/promote'],
      ['POST', '/campaigns/nope/retry'],
      ['POST', '/campaigns/nope/undo'],
      ['GET', '/campaigns/a:b'],
    ] as const) {
      const res = await call(method, url);
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().error).toBe('not_found');
    }
  });

  it('pause, resume and cancel; 409 for an action the state forbids', async () => {
    await create(idle('ctl', { targets: users(4) }));
    expect((await call('POST', '/campaigns/ctl/pause')).json()).toEqual({ campaignId: 'ctl', state: 'paused' });
    expect(await readStatus(api.redis, api.prefix, 'ctl')).toMatchObject({ state: 'paused', pausedReason: 'OPERATOR' });
    expect((await call('POST', '/campaigns/ctl/resume')).json()).toEqual({ campaignId: 'ctl', state: 'running' });
    const promote = await call('POST', '/campaigns/ctl/promote');
    expect(promote.statusCode).toBe(409);
    expect(promote.json()).toMatchObject({ error: 'conflict', message: expect.stringContaining('it is running') });

    const cancel = await call('POST', '/campaigns/ctl/cancel');
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json()).toEqual({ campaignId: 'ctl', state: 'cancelled', drained: 4 });
    const status = (await call('GET', '/campaigns/ctl')).json();
    expect(status).toMatchObject({ id: 'ctl', state: 'cancelled', total: 4, skipped: 4, pending: 0, reasons: { CANCELLED: 4 } });
    for (const action of ['resume', 'pause', 'promote']) {
      const res = await call('POST', `/campaigns/ctl/${action}`);
      expect(res.statusCode, action).toBe(409);
      expect(res.json().message).toContain('it is cancelled');
    }
  });

  it('list, status and report (with ?outcome= and csv), retry of failed targets, 409 to cancel a completed campaign', async () => {
    const fleet = alloyFleet(4);
    t.sandbox.load(fleet.fixtures);
    await work();
    // Two users the platform does not know: failed NOT_FOUND.
    await create(live('run', { targets: [...fleet.targets, { userId: 'ghost-1' }, { userId: 'ghost-2' }] }));
    await waitForCompletion(api.prefix, 'run');

    const list = (await call('GET', '/campaigns')).json();
    expect(list.campaigns).toHaveLength(1);
    expect(list.campaigns[0]).toMatchObject({ id: 'run', state: 'completed', total: 6, upgraded: 4, failed: 2, reasons: { NOT_FOUND: 2 } });
    expect(list.campaigns[0].ageMs).toBeGreaterThanOrEqual(0);
    expect((await call('GET', '/campaigns/run')).json()).toEqual(await readStatus(api.redis, api.prefix, 'run'));

    const lines = async (query: string) => {
      const res = await call('GET', `/campaigns/run/report${query}`);
      expect(res.statusCode).toBe(200);
      return res.body.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { target: string; outcome: string; reason: string });
    };
    expect(await lines('')).toHaveLength(6);
    const failed = await lines('?outcome=failed');
    expect(failed.map((l) => [l.outcome, l.reason])).toEqual([['failed', 'NOT_FOUND'], ['failed', 'NOT_FOUND']]);
    expect((await lines('?outcome=upgraded')).map((l) => l.outcome)).toEqual(Array(4).fill('upgraded'));
    expect(await lines('?outcome=pending')).toEqual([]);
    const bogus = await call('GET', '/campaigns/run/report?outcome=done');
    expect(bogus.statusCode).toBe(400);
    expect(bogus.json()).toMatchObject({ source: 'query', issues: [{ path: ['outcome'] }] });
    expect((await call('GET', '/campaigns/run/report?colour=red')).statusCode).toBe(400);
    const csv = await call('GET', '/campaigns/run/report?format=csv&outcome=failed');
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.body.trim().split('\n')).toEqual([
      'target,outcome,reason,attempts,error,at',
      expect.stringMatching(/^ghost-\d,failed,NOT_FOUND,1,"NOT_FOUND: alloy upgrade: HTTP 404/),
      expect.stringMatching(/^ghost-\d,failed,NOT_FOUND,1,"NOT_FOUND: alloy upgrade: HTTP 404/),
    ]);

    expect((await call('POST', '/campaigns/run/cancel')).statusCode).toBe(409);
    const badReason = await call('POST', '/campaigns/run/retry', { reason: 'NO_SUCH_CODE' });
    expect(badReason.statusCode).toBe(400);
    expect(badReason.json().issues[0].path).toEqual(['reason']);
    const retry = await call('POST', '/campaigns/run/retry', { reason: 'NOT_FOUND' });
    expect(retry.statusCode).toBe(200);
    expect(retry.json()).toMatchObject({ campaignId: 'run', retried: 2 });
    const after = await waitForCompletion(api.prefix, 'run');
    expect(after).toMatchObject({ upgraded: 4, failed: 2, total: 6 });
    expect((await call('POST', '/campaigns/run/retry')).json()).toMatchObject({ retried: 2 });
  });

  it('promote opens the next step of a rollout waiting at a manual gate', async () => {
    const fleet = alloyFleet(4);
    t.sandbox.load(fleet.fixtures);
    await work();
    await create(live('staged', { targets: fleet.targets, rollout: { steps: [{ count: 2 }], gate: 'manual' } }));
    const gated = await waitForState(api.prefix, 'staged', ['gated']);
    expect(gated.upgraded).toBe(2);
    const promote = await call('POST', '/campaigns/staged/promote');
    expect(promote.json()).toEqual({ campaignId: 'staged', state: 'running' });
    expect(await waitForCompletion(api.prefix, 'staged')).toMatchObject({ state: 'completed', upgraded: 4 });
    expect((await call('POST', '/campaigns/staged/promote')).statusCode).toBe(409);
  });

  it('limits: slots in use vs. concurrency per resolved key, full keys first', async () => {
    const fleet = alloyFleet(6);
    t.sandbox.load(fleet.fixtures);
    // The same platform, now slow: restarted on its port, so it is still the registered connection.
    const port = Number(new URL(t.sandbox.url).port);
    await t.sandbox.close();
    const sandbox = await startSandbox({ latencyMs: 60_000, port });
    t.defer(() => sandbox.close());
    sandbox.load(fleet.fixtures);
    const targets = fleet.targets.map((t, i) => ({ ...t, tenant: i < 4 ? 'acme' : 'zeta' }));
    await create(
      live('limited', {
        targets,
        limits: [
          { key: 'tenant-${target.tenant}', concurrency: 2 },
          { key: 'all-${campaign.id}', rate: { max: 1000, perMs: 1000 } },
        ],
      }),
    );
    const before = (await call('GET', '/campaigns/limited/limits')).json();
    // The campaign's own key values, scoped to its connection.
    const scoped = (key: string) => `UPSHIFT_TEST_ALLOY_KEY/${key}`;
    expect(before).toEqual({
      truncated: false,
      keys: [
        { key: scoped('all-limited'), inUse: 0, concurrency: null, atCapacity: false },
        { key: scoped('tenant-acme'), inUse: 0, concurrency: 2, atCapacity: false },
        { key: scoped('tenant-zeta'), inUse: 0, concurrency: 2, atCapacity: false },
      ],
    });
    // The platform holds every answer: 4 targets start (2 per tenant) and keep their slots.
    await work(10);
    // Four calls at the platform: four targets claimed and running.
    await sandbox.requestsReached(4);
    const during = (await call('GET', '/campaigns/limited/limits')).json();
    expect(during.keys).toEqual([
      { key: scoped('tenant-acme'), inUse: 2, concurrency: 2, atCapacity: true },
      { key: scoped('tenant-zeta'), inUse: 2, concurrency: 2, atCapacity: true },
      { key: scoped('all-limited'), inUse: 4, concurrency: null, atCapacity: false },
    ]);
    // The held calls end with the sandbox's connections, so the worker closes without waiting them out.
    await call('POST', '/campaigns/limited/cancel');
    await sandbox.close();
  });
});
