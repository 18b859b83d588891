import { describe, expect, it } from 'vitest';
import { setupSandbox } from '../support/deployment.js';
import { call, without, ALLOY, CONDUCTOR, TALLYFY, NECTED, FIXTURES, DEFAULT_CONFIG, apiOn } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

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
