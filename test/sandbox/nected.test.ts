import { describe, expect, it } from 'vitest';
import { setupSandbox } from '../support/deployment.js';
import { type Headers, NECTED, ODD_ID, enc, FIXTURES, DEFAULT_CONFIG, apiOn } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

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
