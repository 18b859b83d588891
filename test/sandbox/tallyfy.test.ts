import { describe, expect, it } from 'vitest';
import { setupSandbox } from '../support/deployment.js';
import { without, TALLYFY, ODD_ID, enc, FIXTURES, DEFAULT_CONFIG, apiOn } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

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

  it('reads a run (get a process run): the run under data, no state change; the same checks', async () => {
    const get = (headers = TALLYFY, runId = 'run-1') => api('GET', `/organizations/org-1/runs/${enc(runId)}`, { headers });
    const r = await get();
    expect(r.status).toBe(200);
    expect(r.json.data).toMatchObject({ id: 'run-1', name: run('run-1').name });
    expect(r.json.data).not.toHaveProperty('orgId');
    expect(sb.stats().appliedByTarget).toEqual({});
    expect((await get(without(TALLYFY, 'authorization'))).status).toBe(401);
    expect((await get(without(TALLYFY, 'x-tallyfy-client'))).status).toBe(400);
    expect((await get({ ...TALLYFY, accept: '*/*' })).status).toBe(406);
    expect((await get(TALLYFY, 'no-such-run')).status).toBe(404);
    expect((await get(TALLYFY, 'run-forbidden')).status).toBe(403);
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
