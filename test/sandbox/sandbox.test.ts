import { describe, expect, it } from 'vitest';
import { request, type Dispatcher } from 'undici';
import { SANDBOX_KEYS, startSandbox, type Sandbox, type SandboxFixtures } from '../../src/sandbox/index.js';
import { setupSandbox } from '../support/deployment.js';

/* Helpers ------------------------------------------------------------------------------------ */

type Headers = Record<string, string>;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- test assertions on JSON bodies
}

async function call(
  base: string,
  method: Dispatcher.HttpMethod,
  path: string,
  opts: { headers?: Headers; body?: unknown } = {},
): Promise<Answer> {
  const body =
    opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const res = await request(base + path, { method, headers: opts.headers ?? {}, body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: text === '' ? undefined : JSON.parse(text) };
}

function without(headers: Headers, name: string): Headers {
  const { [name]: _dropped, ...rest } = headers;
  return rest;
}

const ALLOY: Headers = { authorization: `bearer ${SANDBOX_KEYS.alloy}`, 'x-api-version': '2025-09' };
const CONDUCTOR: Headers = { 'x-authorization': SANDBOX_KEYS.conductor, 'content-type': 'application/json' };
const TALLYFY: Headers = {
  authorization: `Bearer ${SANDBOX_KEYS.tallyfy}`,
  'x-tallyfy-client': 'APIClient',
  accept: 'application/json',
  'content-type': 'application/json',
};
const NECTED: Headers = { 'nected-api-key': SANDBOX_KEYS.nected, 'content-type': 'application/json' };

/** An id that only survives if the sandbox splits the path before decoding it. */
const ODD_ID = 'a/b?c#d%e f\u00e9';
const enc = encodeURIComponent;

const definition = (version: number): Record<string, unknown> & { name: string; version: number } => ({
  name: 'order',
  version,
  tasks: [{ name: 't', taskReferenceName: 't_ref', type: 'SIMPLE' }],
  schemaVersion: 2,
  timeoutSeconds: 0,
  ownerEmail: 'ops@example.com',
});

const FIXTURES: SandboxFixtures = {
  alloy: {
    workflows: { 'wf-1': { latestVersion: 5 }, [ODD_ID]: { latestVersion: 3 } },
    installs: [
      { workflowId: 'wf-1', userId: 'u-1', version: 4 },
      { workflowId: 'wf-1', userId: 'u-reinstall', version: 4, reinstallRequired: true },
      { workflowId: 'wf-1', userId: 'u-forbidden', version: 4, forbidden: true },
      { workflowId: ODD_ID, userId: 'user \u00e9', version: 1 },
    ],
  },
  conductor: {
    executions: [
      { workflowId: 'exec-1', workflowName: 'order', workflowVersion: 1, status: 'RUNNING', input: { a: 1, b: 2 } },
      { workflowId: 'exec-done', workflowName: 'order', workflowVersion: 1, status: 'COMPLETED' },
      { workflowId: ODD_ID, workflowName: 'order', workflowVersion: 1, status: 'PAUSED' },
    ],
    definitions: [definition(1), definition(2)],
  },
  tallyfy: {
    runs: [
      { orgId: 'org-1', id: 'run-1', name: 'Onboarding', tags: ['t1'] },
      { orgId: 'org-1', id: 'run-forbidden', name: 'Secret', forbidden: true },
      { orgId: ODD_ID, id: ODD_ID, name: 'Odd' },
    ],
  },
  nected: {
    workflows: [
      { entityId: 'ent-1', graph: { name: 'main wf', description: 'd', startNode: '1', nodes: [], edges: [] } },
      { entityId: 'ent-1', branch: 'dev', graph: { name: 'dev wf', nodes: [{ id: '1' }], edges: [] } },
      { entityId: ODD_ID, graph: { name: 'odd wf', nodes: [], edges: [] } },
    ],
  },
};

const DEFAULT_CONFIG = {
  latencyMs: 0,
  resetRate: 0,
  slowRate: 0,
  slowMs: 30_000,
  failRate: 0,
  throttleRate: 0,
  retryAfterS: 1,
  conflictRate: 0,
  conflictStatus: 409,
  limitKeyPattern: null,
} as const;

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = (method: Dispatcher.HttpMethod, path: string, opts?: { headers?: Headers; body?: unknown }) =>
  call(sb.url, method, path, opts);

/* Common ------------------------------------------------------------------------------------- */

describe('routing and transport', () => {
  it('answers an unknown path with 404 no route', async () => {
    const r = await api('GET', '/nope/nothing');
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ message: 'no route' });
  });

  it('answers a wrong method on a known path with 405 and Allow', async () => {
    const r = await api('GET', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('PUT');
  });

  it('refuses bodies over 1 MiB with 413', async () => {
    const r = await api('PATCH', '/dev/v1/workflow/ent-1', { headers: NECTED, body: 'x'.repeat(1024 * 1024 + 1) });
    expect(r.status).toBe(413);
    expect(r.json.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('refuses malformed percent-encoding with 400', async () => {
    const r = await api('GET', '/api/workflow/%E0%A4%A', { headers: CONDUCTOR });
    expect(r.status).toBe(400);
  });

  it('serves the control plane over HTTP without counting it', async () => {
    expect((await call(sb.url, 'POST', '/__sandbox/reset')).status).toBe(204);
    const load = await call(sb.url, 'POST', '/__sandbox/fixtures', {
      body: { alloy: { workflows: { w: { latestVersion: 2 } }, installs: [{ workflowId: 'w', userId: 'u', version: 1 }] } },
    });
    expect(load.status).toBe(204);
    const state = await call(sb.url, 'GET', '/__sandbox/state');
    expect(state.json.alloy.installs).toEqual([{ workflowId: 'w', userId: 'u', version: 1 }]);
    expect((await call(sb.url, 'POST', '/__sandbox/config', { body: { failRate: 2 } })).status).toBe(400);
    expect((await call(sb.url, 'POST', '/__sandbox/fixtures', { body: { alloy: { bogus: 1 } } })).status).toBe(400);
    expect((await call(sb.url, 'POST', '/__sandbox/config', { body: { latencyMs: 1 } })).status).toBe(204);
    const stats = await call(sb.url, 'GET', '/__sandbox/stats');
    expect(stats.status).toBe(200);
    expect(stats.json.requests).toBe(0);
  });

  it('records platform requests raw when record is on', async () => {
    await api('PUT', `/organizations/org-1/runs/run-1?x=%2F`, { headers: TALLYFY, body: { name: 'N' } });
    expect(sb.received).toHaveLength(1);
    expect(sb.received![0]).toMatchObject({
      method: 'PUT',
      path: '/organizations/org-1/runs/run-1?x=%2F',
      body: '{"name":"N"}',
    });
    expect(sb.received![0]!.headers['x-tallyfy-client']).toBe('APIClient');
  });

  it('stamps each recorded request with its arrival time', async () => {
    const before = Date.now();
    await api('GET', '/api/workflow/exec-1', { headers: CONDUCTOR });
    await api('GET', '/nowhere');
    const after = Date.now();
    const [first, second] = sb.received!;
    expect(Number.isInteger(first!.at)).toBe(true);
    expect(first!.at).toBeGreaterThanOrEqual(before);
    expect(second!.at).toBeGreaterThanOrEqual(first!.at);
    expect(second!.at).toBeLessThanOrEqual(after);
  });

  it('state() is a deep copy', async () => {
    const copy = sb.state();
    copy.alloy!.installs![0]!.version = 99;
    expect(sb.state().alloy!.installs![0]!.version).toBe(4);
  });
});

/* Alloy -------------------------------------------------------------------------------------- */

describe('alloy', () => {
  const upgrade = (headers: Headers, query = '?userId=u-1', id = 'wf-1') =>
    api('PUT', `/workflows/${enc(id)}/upgrade${query}`, { headers });
  const installOf = (userId: string) => sb.state().alloy!.installs!.find((i) => i.userId === userId)!;

  it('upgrades to the latest version and counts it', async () => {
    const r = await upgrade(ALLOY);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ upgraded: true });
    expect(installOf('u-1').version).toBe(5);
    expect(sb.stats().appliedByTarget['alloy:wf-1:u-1']).toBe(1);
  });

  it('accepts the auth scheme in any case but the key only exactly', async () => {
    expect((await upgrade({ ...ALLOY, authorization: `BEARER ${SANDBOX_KEYS.alloy}` })).status).toBe(200);
    expect((await upgrade({ ...ALLOY, authorization: `bearer ${SANDBOX_KEYS.alloy.toUpperCase()}` })).status).toBe(401);
    expect((await upgrade({ ...ALLOY, authorization: SANDBOX_KEYS.alloy })).status).toBe(401);
    const missing = await upgrade(without(ALLOY, 'authorization'));
    expect(missing.status).toBe(401);
    expect(missing.json).toEqual({ message: 'Unauthorized' });
  });

  it('requires x-api-version 2025-09 exactly', async () => {
    for (const headers of [without(ALLOY, 'x-api-version'), { ...ALLOY, 'x-api-version': '2024-06' }]) {
      const r = await upgrade(headers);
      expect(r.status).toBe(400);
      expect(r.json).toEqual({ message: 'unsupported x-api-version' });
    }
    expect(installOf('u-1').version).toBe(4);
  });

  it('requires userId', async () => {
    expect((await upgrade(ALLOY, '')).status).toBe(400);
    expect((await upgrade(ALLOY, '?userId=')).status).toBe(400);
  });

  it('answers 404, 403 and the documented empty 400', async () => {
    expect((await upgrade(ALLOY, '?userId=nobody')).status).toBe(404);
    expect((await upgrade(ALLOY, '?userId=u-1', 'wf-unknown')).json).toEqual({ message: 'not found' });
    expect((await upgrade(ALLOY, '?userId=u-forbidden')).status).toBe(403);
    const reinstall = await upgrade(ALLOY, '?userId=u-reinstall');
    expect(reinstall.status).toBe(400);
    expect(reinstall.json).toEqual({});
    expect(installOf('u-reinstall').version).toBe(4);
    expect(sb.stats().appliedByTarget).toEqual({});
  });

  it('looks up an id with encoded / ? # % literally', async () => {
    const r = await upgrade(ALLOY, `?userId=${enc('user \u00e9')}`, ODD_ID);
    expect(r.status).toBe(200);
    expect(installOf('user \u00e9').version).toBe(3);
    expect(sb.stats().requestsByTarget[`alloy:${ODD_ID}:user \u00e9`]).toBe(1);
  });
});

/* Conductor ---------------------------------------------------------------------------------- */

describe('conductor', () => {
  const upgrade = (body: unknown, headers = CONDUCTOR, id = 'exec-1') =>
    api('POST', `/api/workflow/${enc(id)}/upgrade`, { headers, body });
  const exec = (id: string) => sb.state().conductor!.executions!.find((e) => e.workflowId === id)!;

  it('reads an execution, with tasks only when asked', async () => {
    const r = await api('GET', '/api/workflow/exec-1?includeTasks=false', { headers: CONDUCTOR });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ workflowId: 'exec-1', workflowName: 'order', workflowVersion: 1, status: 'RUNNING' });
    expect(r.json.input).toEqual({ a: 1, b: 2 });
    expect(typeof r.json.createTime).toBe('number');
    expect(r.json).not.toHaveProperty('tasks');
    expect((await api('GET', '/api/workflow/exec-1', { headers: CONDUCTOR })).json.tasks).toEqual([]);
    expect((await api('GET', '/api/workflow/missing', { headers: CONDUCTOR })).status).toBe(404);
  });

  it('requires X-Authorization exactly', async () => {
    const r = await api('GET', '/api/workflow/exec-1', { headers: { 'x-authorization': 'wrong' } });
    expect(r.status).toBe(401);
    expect(r.json).toEqual({ message: 'Unauthorized', retryable: false });
    expect((await upgrade({ name: 'order', version: 2 }, without(CONDUCTOR, 'x-authorization'))).status).toBe(401);
  });

  it('upgrades a running execution: version, merged input, task output; empty 200', async () => {
    const r = await upgrade({ name: 'order', version: 2, workflowInput: { b: 3, c: 4 }, taskOutput: { t_ref: { ok: 1 } } });
    expect(r.status).toBe(200);
    expect(r.text).toBe('');
    expect(exec('exec-1')).toMatchObject({ workflowVersion: 2, input: { a: 1, b: 3, c: 4 }, taskOutput: { t_ref: { ok: 1 } } });
    expect(sb.stats().appliedByTarget).toEqual({ 'conductor:exec:exec-1': 1 });
    const tasks = (await api('GET', '/api/workflow/exec-1?includeTasks=true', { headers: CONDUCTOR })).json.tasks;
    expect(tasks).toEqual([{ referenceTaskName: 't_ref', status: 'SKIPPED', outputData: { ok: 1 } }]);
  });

  it('requires a JSON content type (415)', async () => {
    const r = await upgrade({ name: 'order', version: 2 }, { ...CONDUCTOR, 'content-type': 'text/plain' });
    expect(r.status).toBe(415);
    expect(r.json).toMatchObject({ status: 415, retryable: false });
  });

  it('validates the upgrade body strictly (400)', async () => {
    for (const body of [
      { name: 'order', version: 2, extra: true },
      { name: 'order', version: '2' },
      { name: 'order', version: 2.5 },
      { version: 2 },
      { name: 'order', version: 2, workflowInput: [] },
      '{not json',
    ]) {
      const r = await upgrade(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json).toMatchObject({ status: 400, retryable: false });
    }
    expect(exec('exec-1').workflowVersion).toBe(1);
  });

  it('refuses unknown, ended, mismatched and undefined-version upgrades', async () => {
    expect((await upgrade({ name: 'order', version: 2 }, CONDUCTOR, 'nope')).status).toBe(404);
    const ended = await upgrade({ name: 'order', version: 2 }, CONDUCTOR, 'exec-done');
    expect(ended.status).toBe(409);
    expect(ended.json.message).toBe('workflow is not running');
    expect((await upgrade({ name: 'other', version: 2 })).status).toBe(400);
    const noDef = await upgrade({ name: 'order', version: 9 });
    expect(noDef.status).toBe(400);
    expect(noDef.json.message).toBe('workflow definition not found');
    expect(sb.stats().appliedByTarget).toEqual({});
  });

  it('upgrades a PAUSED execution whose id holds / ? # % literally', async () => {
    expect((await upgrade({ name: 'order', version: 2 }, CONDUCTOR, ODD_ID)).status).toBe(200);
    expect(exec(ODD_ID).workflowVersion).toBe(2);
    expect((await api('GET', `/api/workflow/${enc(ODD_ID)}`, { headers: CONDUCTOR })).json.workflowId).toBe(ODD_ID);
  });

  it('reads definitions, latest by default', async () => {
    expect((await api('GET', '/api/metadata/workflow/order', { headers: CONDUCTOR })).json.version).toBe(2);
    expect((await api('GET', '/api/metadata/workflow/order?version=1', { headers: CONDUCTOR })).json.version).toBe(1);
    expect((await api('GET', '/api/metadata/workflow/order?version=7', { headers: CONDUCTOR })).status).toBe(404);
    expect((await api('GET', '/api/metadata/workflow/order?version=x', { headers: CONDUCTOR })).status).toBe(400);
  });

  it('stores a new definition version with newVersion=true', async () => {
    const before = Date.now();
    const r = await api('PUT', '/api/metadata/workflow?overwrite=true&newVersion=true', {
      headers: CONDUCTOR,
      body: { ...definition(2), rateLimitConfig: { rateLimitKey: 'k', concurrentExecLimit: 3 } },
    });
    expect(r.status).toBe(200);
    expect(r.text).toBe('');
    const stored = (await api('GET', '/api/metadata/workflow/order', { headers: CONDUCTOR })).json;
    expect(stored.version).toBe(3);
    expect(stored.rateLimitConfig).toEqual({ rateLimitKey: 'k', concurrentExecLimit: 3 });
    expect(stored.updateTime).toBeGreaterThanOrEqual(before);
    expect(sb.stats().appliedByTarget['conductor:def:order']).toBe(1);
  });

  it('overwrites in place only with overwrite=true', async () => {
    const put = (query: string) =>
      api('PUT', `/api/metadata/workflow${query}`, { headers: CONDUCTOR, body: { ...definition(2), description: 'new' } });
    expect((await put('?overwrite=false&newVersion=false')).status).toBe(409);
    expect((await put('?overwrite=true&newVersion=false')).status).toBe(200);
    const stored = (await api('GET', '/api/metadata/workflow/order?version=2', { headers: CONDUCTOR })).json;
    expect(stored.description).toBe('new');
  });

  it('validates the required definition fields, naming the field', async () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['name', { ...definition(1), name: undefined }],
      ['tasks', { ...definition(1), tasks: undefined }],
      ['schemaVersion', { ...definition(1), schemaVersion: 1 }],
      ['timeoutSeconds', { ...definition(1), timeoutSeconds: '0' }],
      ['ownerEmail', { ...definition(1), ownerEmail: 'nobody' }],
    ];
    for (const [field, body] of cases) {
      const r = await api('PUT', '/api/metadata/workflow?overwrite=true', { headers: CONDUCTOR, body });
      expect(r.status, field).toBe(400);
      expect(r.json.message).toContain(field);
    }
    const plain = await api('PUT', '/api/metadata/workflow', {
      headers: { ...CONDUCTOR, 'content-type': 'text/plain' },
      body: definition(1),
    });
    expect(plain.status).toBe(415);
  });
});

/* Tallyfy ------------------------------------------------------------------------------------ */

describe('tallyfy', () => {
  const update = (body: unknown, headers = TALLYFY, org = 'org-1', run = 'run-1') =>
    api('PUT', `/organizations/${enc(org)}/runs/${enc(run)}`, { headers, body });
  const run = (id: string) => sb.state().tallyfy!.runs!.find((r) => r.id === id)!;

  it('applies the fields and returns the run', async () => {
    const r = await update({ name: 'Renamed', owner_id: 7, tags: ['a', 'b'], prerun: [{ x: 1 }] });
    expect(r.status).toBe(200);
    expect(r.json.data).toMatchObject({ id: 'run-1', name: 'Renamed', owner_id: 7, tags: ['a', 'b'] });
    expect(Date.parse(r.json.data.last_updated)).not.toBeNaN();
    expect(r.json.data).not.toHaveProperty('orgId');
    expect(run('run-1')).toMatchObject({ name: 'Renamed', owner_id: 7, prerun: [{ x: 1 }] });
    expect(sb.stats().appliedByTarget).toEqual({ 'tallyfy:org-1:run-1': 1 });
  });

  it('checks auth, client header, Accept and Content-Type in turn', async () => {
    expect((await update({ name: 'x' }, without(TALLYFY, 'authorization'))).status).toBe(401);
    expect((await update({ name: 'x' }, { ...TALLYFY, authorization: 'Bearer nope' })).status).toBe(401);
    expect((await update({ name: 'x' }, without(TALLYFY, 'x-tallyfy-client'))).status).toBe(400);
    expect((await update({ name: 'x' }, { ...TALLYFY, 'x-tallyfy-client': 'apiclient' })).status).toBe(400);
    expect((await update({ name: 'x' }, without(TALLYFY, 'accept'))).status).toBe(406);
    expect((await update({ name: 'x' }, { ...TALLYFY, accept: '*/*' })).status).toBe(406);
    expect((await update({ name: 'x' }, { ...TALLYFY, accept: 'text/html, application/json;q=0.9' })).status).toBe(200);
    expect((await update({ name: 'y' }, { ...TALLYFY, 'content-type': 'text/plain' })).status).toBe(415);
    expect(run('run-1').name).toBe('x');
  });

  it('answers 422 with errors by field for unknown fields, wrong types, empty bodies', async () => {
    const unknownField = await update({ name: 'x', color: 'red' });
    expect(unknownField.status).toBe(422);
    expect(unknownField.json.errors).toHaveProperty('color');
    const wrongType = await update({ owner_id: '7', tags: [1] });
    expect(wrongType.status).toBe(422);
    expect(Object.keys(wrongType.json.errors).sort()).toEqual(['owner_id', 'tags']);
    expect((await update({})).status).toBe(422);
    expect((await update('{"name":')).status).toBe(400);
    expect(run('run-1').name).toBe('Onboarding');
  });

  it('answers 404 for an unknown run and 403 for a forbidden one', async () => {
    expect((await update({ name: 'x' }, TALLYFY, 'org-2', 'run-1')).status).toBe(404);
    expect((await update({ name: 'x' }, TALLYFY, 'org-1', 'run-forbidden')).status).toBe(403);
  });

  it('looks up encoded org and run ids literally', async () => {
    expect((await update({ summary: 's' }, TALLYFY, ODD_ID, ODD_ID)).status).toBe(200);
    expect(run(ODD_ID).summary).toBe('s');
  });
});

/* Nected ------------------------------------------------------------------------------------- */

describe('nected', () => {
  const get = (id = 'ent-1', headers: Headers = NECTED) => api('GET', `/dev/v1/workflow/${enc(id)}`, { headers });
  const patch = (body: unknown, id = 'ent-1', headers: Headers = NECTED) =>
    api('PATCH', `/dev/v1/workflow/${enc(id)}`, { headers, body });

  it('reads the graph with entityId and checksum, per branch', async () => {
    const main = await get();
    expect(main.status).toBe(200);
    expect(main.json).toMatchObject({ code: 'success', data: { name: 'main wf', entityId: 'ent-1' } });
    expect(typeof main.json.data.checksum).toBe('string');
    const dev = await get('ent-1', { ...NECTED, 'nected-branch': 'dev' });
    expect(dev.json.data.name).toBe('dev wf');
    expect(dev.json.data.checksum).not.toBe(main.json.data.checksum);
    expect((await get('ent-2')).json).toMatchObject({ code: 'NOT_FOUND', data: null });
  });

  it('replaces the full graph and moves the checksum', async () => {
    const { data } = (await get()).json;
    const { description: _dropped, ...rest } = data;
    const r = await patch({ ...rest, name: 'renamed' });
    expect(r.status).toBe(200);
    expect(r.json.code).toBe('success');
    expect(r.json.data.checksum).not.toBe(data.checksum);
    const after = (await get()).json.data;
    expect(after.name).toBe('renamed');
    expect(after).not.toHaveProperty('description'); // replaced, not merged
    expect(after.checksum).toBe(r.json.data.checksum);
    expect(sb.stats().appliedByTarget).toEqual({ 'nected::ent-1': 1 });
  });

  it('requires Nected-API-Key exactly', async () => {
    const r = await get('ent-1', { 'nected-api-key': 'nope' });
    expect(r.status).toBe(401);
    expect(r.json).toMatchObject({ code: 'UNAUTHORIZED', data: null });
  });

  it('requires a JSON content type', async () => {
    const { data } = (await get()).json;
    expect((await patch(data, 'ent-1', { ...NECTED, 'content-type': 'application/merge-patch+json' })).status).toBe(415);
  });

  it('refuses a partial graph, naming the missing field', async () => {
    const { data } = (await get()).json;
    for (const field of ['checksum', 'name', 'nodes', 'edges']) {
      const { [field]: _gone, ...partial } = data;
      const r = await patch(partial);
      expect(r.status, field).toBe(400);
      expect(r.json).toEqual({ code: 'BAD_REQUEST', message: `full workflow graph required: missing ${field}`, data: null });
    }
    expect((await patch({ checksum: data.checksum, description: 'only this' })).status).toBe(400);
    expect((await get()).json.data.checksum).toBe(data.checksum);
  });

  it('refuses a stale checksum with 409', async () => {
    const { data } = (await get()).json;
    expect((await patch({ ...data, name: 'first' })).status).toBe(200);
    const stale = await patch({ ...data, name: 'second' });
    expect(stale.status).toBe(409);
    expect(stale.json).toEqual({ code: 'CONFLICT', message: 'checksum mismatch: workflow was modified', data: null });
    expect((await get()).json.data.name).toBe('first');
  });

  it('refuses a stale checksum with 400 naming the checksum when configured so', async () => {
    sb.configure({ conflictStatus: 400 });
    const r = await patch({ ...(await get()).json.data, checksum: 'old' });
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ code: 'CHECKSUM_MISMATCH', message: 'checksum mismatch: workflow was modified', data: null });
  });

  it('simulates a concurrent edit at conflictRate 1', async () => {
    sb.configure({ conflictRate: 1 });
    const { data } = (await get()).json;
    const r = await patch({ ...data, name: 'mine' });
    expect(r.status).toBe(409);
    const now = (await get()).json.data;
    expect(now.description).toBe('concurrent edit 1');
    expect(now.checksum).not.toBe(data.checksum);
    expect(sb.stats().faults.conflicts).toBe(1);
    sb.configure({ conflictRate: 0 });
    expect((await patch({ ...now, name: 'mine' })).status).toBe(200);
  });

  it('keys workflows by branch and by the literal decoded id', async () => {
    const dev = { ...NECTED, 'nected-branch': 'dev' };
    const { data } = (await get('ent-1', dev)).json;
    expect((await patch({ ...data, name: 'dev 2' }, 'ent-1', dev)).status).toBe(200);
    expect((await get()).json.data.name).toBe('main wf');
    expect(sb.stats().appliedByTarget).toEqual({ 'nected:dev:ent-1': 1 });
    const odd = (await get(ODD_ID)).json.data;
    expect(odd.entityId).toBe(ODD_ID);
    expect((await patch({ ...odd, name: 'odd 2' }, ODD_ID)).status).toBe(200);
    expect((await patch({ ...odd, name: 'x' }, 'missing')).status).toBe(404);
  });
});

/* Faults ------------------------------------------------------------------------------------- */

describe('fault injection', () => {
  const statusesOf = async (s: Sandbox, n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      out.push((await call(s.url, 'GET', '/api/workflow/exec-1', { headers: CONDUCTOR })).status);
    }
    return out;
  };

  it('is reproducible for a seed', async () => {
    const opts = { seed: 42, failRate: 0.3, throttleRate: 0.2 };
    const a = await startSandbox(opts);
    const b = await startSandbox(opts);
    const c = await startSandbox({ ...opts, seed: 43 });
    try {
      for (const s of [a, b, c]) s.load(FIXTURES);
      const first = await statusesOf(a, 50);
      expect(await statusesOf(b, 50)).toEqual(first);
      expect(await statusesOf(c, 50)).not.toEqual(first);
      expect(new Set(first)).toContain(200);
      expect(new Set(first)).toContain(429);
      expect(first.some((s) => s >= 500)).toBe(true);
      a.reset(); // restarts the sequence from the seed
      a.load(FIXTURES);
      expect(await statusesOf(a, 50)).toEqual(first);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('fails every request at failRate 1, before auth, without touching state', async () => {
    sb.configure({ failRate: 1, retryAfterS: 3 });
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const r = await api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: without(ALLOY, 'authorization') });
      seen.add(r.status);
      expect([500, 502, 503]).toContain(r.status);
      expect(r.json).toEqual({ message: 'injected fault', retryable: true });
      expect(r.headers['retry-after']).toBe(r.status === 503 ? '3' : undefined);
    }
    expect(seen.size).toBeGreaterThan(1);
    expect(sb.stats().faults.failed).toBe(50);
    expect(sb.state().alloy!.installs![0]!.version).toBe(4);
  });

  it('throttles every request at throttleRate 1 with Retry-After', async () => {
    sb.configure({ throttleRate: 1, failRate: 1, retryAfterS: 0 });
    const r = await api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY });
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('0');
    expect(sb.stats().faults).toEqual({ failed: 0, throttled: 1, conflicts: 0, resets: 0, slow: 0 });
  });

  it('never faults the control plane', async () => {
    sb.configure({ failRate: 1, latencyMs: 5_000 });
    const r = await call(sb.url, 'GET', '/__sandbox/stats');
    expect(r.status).toBe(200);
  });
});

/* Stats -------------------------------------------------------------------------------------- */

describe('stats', () => {
  it('counts requests, statuses, targets and applied changes', async () => {
    await api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY });
    await api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: without(ALLOY, 'x-api-version') });
    await api('GET', '/api/workflow/exec-1', { headers: CONDUCTOR });
    await api('GET', '/nowhere');
    const s = sb.stats();
    expect(s.requests).toBe(4);
    expect(s.byStatus).toEqual({ '200': 2, '400': 1, '404': 1 });
    expect(s.requestsByTarget).toEqual({ 'alloy:wf-1:u-1': 2, 'conductor:exec:exec-1': 1 });
    expect(s.appliedByTarget).toEqual({ 'alloy:wf-1:u-1': 1 });
    sb.reset();
    expect(sb.stats().requests).toBe(0);
    expect(sb.state().alloy!.installs).toEqual([]);
  });

  it('tracks concurrency overall and per limit key (from limitKeyPattern) while latency holds answers', async () => {
    const users = ['t1-a', 't1-b', 't1-c', 't2-a', 't2-b', 'u-1'];
    sb.load({
      alloy: {
        workflows: { 'wf-1': { latestVersion: 5 } },
        installs: users.map((userId) => ({ workflowId: 'wf-1', userId, version: 4 })),
      },
    });
    // Long enough that all seven requests are surely in the sandbox at once; nothing waits on it but the answers.
    sb.configure({ latencyMs: 300, limitKeyPattern: String.raw`^alloy:[^:]+:(t\d+)-` });
    const answers = await Promise.all([
      ...users.map((userId) => api('PUT', `/workflows/wf-1/upgrade?userId=${userId}`, { headers: ALLOY })),
      api('GET', '/api/workflow/exec-1', { headers: CONDUCTOR }), // target key that does not match
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200, 200]);
    const s = sb.stats();
    expect(s.maxInFlight).toBe(7);
    expect(s.inFlight).toBe(0);
    expect(s.maxInFlightByKey).toEqual({ t1: 3, t2: 2 });

    // Switched off at runtime (over HTTP): nothing more is counted per key.
    sb.reset();
    sb.load(FIXTURES);
    sb.configure({ latencyMs: 0 });
    expect((await call(sb.url, 'POST', '/__sandbox/config', { body: { limitKeyPattern: null } })).status).toBe(204);
    expect((await api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY })).status).toBe(200);
    expect(sb.stats().maxInFlightByKey).toEqual({});
  });

  it('counts a request per key only once it is routed to a matching target', async () => {
    sb.configure({ limitKeyPattern: '^conductor:exec:(.*)$' });
    await api('GET', '/api/workflow/exec-1', { headers: CONDUCTOR });
    await api('GET', '/nowhere'); // no target key at all
    await api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY }); // target key, no match
    const s = sb.stats();
    expect(s.requests).toBe(3);
    expect(s.maxInFlightByKey).toEqual({ 'exec-1': 1 });
  });

  it('refuses a limitKeyPattern that is not a regular expression with a capture group', async () => {
    const configure = (limitKeyPattern: unknown) => call(sb.url, 'POST', '/__sandbox/config', { body: { limitKeyPattern } });
    const noGroup = await configure('^alloy:[^:]+:t\\d+-');
    expect(noGroup.status).toBe(400);
    expect(noGroup.json.message).toContain('capture group');
    const nonCapturing = await configure('^alloy:(?:t1)');
    expect(nonCapturing.status).toBe(400);
    expect(nonCapturing.json.message).toContain('capture group');
    const invalid = await configure('^alloy:(t1');
    expect(invalid.status).toBe(400);
    expect(invalid.json.message).toContain('not a valid regular expression');
    expect((await configure('')).status).toBe(400);
    expect((await configure(7)).status).toBe(400);
    expect((await configure('^alloy:(?<user>.*)$')).status).toBe(204);
    await expect(startSandbox({ limitKeyPattern: '[' })).rejects.toThrow(/limitKeyPattern/);
  });
});
