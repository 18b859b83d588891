import { describe, expect, it } from 'vitest';
import { startSandbox } from '../../src/sandbox/index.js';
import { setupSandbox } from '../support/deployment.js';
import { call, without, ALLOY, CONDUCTOR, FIXTURES, DEFAULT_CONFIG, apiOn } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

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
