import { describe, expect, it } from 'vitest';
import { setupSandbox } from '../support/deployment.js';
import { without, CONDUCTOR, ODD_ID, enc, definition, FIXTURES, DEFAULT_CONFIG, apiOn } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

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
