import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { campaignKeys, eventsChannel, readStatus } from '../../src/shared/index.js';
import { testConnections } from '../support/connections.js';
import { setupDeployment } from '../support/deployment.js';
import { CREDENTIAL_ENV } from '../support/fleet.js';
import { newRedis } from '../support/harness.js';
import { AUTH, startTestApi, type TestApi } from './support.js';

/**
 * Discovery over HTTP runs in the background: the API answers as soon as the campaign exists,
 * so no caller holds a request open for as long as a fleet takes to page, and a discovery is
 * bounded by a target cap and a deadline.
 */
describe('POST /campaigns with a discovery query', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 1 }, credentials: true });
  let api: TestApi;

  beforeEach(async () => {
    api = await startTestApi(t.producer);
  });
  afterEach(() => api.close());

  const headers = { ...AUTH, 'content-type': 'application/json' };

  const load = (n: number) =>
    t.sandbox.load({
      conductor: {
        definitions: [1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })),
        executions: Array.from({ length: n }, (_, i) => ({ workflowId: `x-${i}`, workflowName: 'flow', workflowVersion: 1, status: 'RUNNING' as const })),
      },
    });
  const spec = (id: string, discover: Record<string, unknown>) => ({
    id,
    connection: 'UPSHIFT_TEST_CONDUCTOR_KEY',
    operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 },
    targets: { discover: { workflowName: 'flow', ...discover } },
  });

  it('answers 202 once the campaign exists, with the status hash showing discovering; pages on behind the answer', async () => {
    load(300);
    const res = await api.app.inject({ method: 'POST', url: '/campaigns', headers, payload: JSON.stringify(spec('bg', { pageSize: 50 })) });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({ campaignId: 'bg', created: true, discovering: true });
    // No worker runs: the campaign cannot complete, only discovery can end. The event for the
    // campaign's last page is not a state change, so wait on the status the dashboard reads.
    const status = await readStatus(api.redis, api.prefix, 'bg');
    expect(status).not.toBeNull();
    const ended = await untilDiscovered(api, 'bg');
    expect(ended.total).toBe(300);
    expect(ended.discoverStopped).toBeUndefined();
  });

  it('stops at maxTargets and says so in the status hash', async () => {
    load(250);
    const res = await api.app.inject({ method: 'POST', url: '/campaigns', headers, payload: JSON.stringify(spec('capped', { pageSize: 100, maxTargets: 120 })) });
    expect(res.statusCode).toBe(202);
    const ended = await untilDiscovered(api, 'capped');
    expect(ended.total).toBe(120);
    expect(ended.discoverStopped).toBe('MAX_TARGETS');
  });

  it('a discovery that fails in the background records a scrubbed discoveryError; the answer was already 202', async () => {
    // The search answers 400 echoing the key; the campaign exists and says why discovery stopped.
    t.sandbox.close();
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `bad query for key ${String(req.headers['x-authorization'])}` }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const echoApi = await startTestApi({ connections: testConnections(url) });
    try {
      const res = await echoApi.app.inject({ method: 'POST', url: '/campaigns', headers, payload: JSON.stringify(spec('fails', {})) });
      expect(res.statusCode).toBe(202);
      const failed = await untilField(echoApi, 'fails', 'discoveryError');
      expect(failed).toMatch(/HTTP 400/);
      expect(failed).not.toContain(CREDENTIAL_ENV.UPSHIFT_TEST_CONDUCTOR_KEY);
      expect(echoApi.logs()).toMatch(/discovery failed/);
      expect(echoApi.logs()).not.toContain(CREDENTIAL_ENV.UPSHIFT_TEST_CONDUCTOR_KEY);
    } finally {
      await echoApi.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/** The status once discovery has ended, announced on the events channel (`discovered: true`). */
async function untilDiscovered(api: TestApi, id: string): Promise<{ total: number; discoverStopped: string | undefined }> {
  const sub = newRedis();
  try {
    const ended = new Promise<void>((resolve) =>
      sub.on('message', (_c, m: string) => {
        const e = JSON.parse(m) as { id: string; discovered?: boolean };
        if (e.id === id && e.discovered === true) resolve();
      }),
    );
    await sub.subscribe(eventsChannel(api.prefix));
    if ((await api.redis.hget(campaignKeys(api.prefix, id).status, 'discoveredAt')) === null) await ended;
  } finally {
    sub.disconnect();
  }
  const h = await api.redis.hgetall(campaignKeys(api.prefix, id).status);
  expect(h.discovering).toBeUndefined();
  return { total: Number(h.total), discoverStopped: h.discoverStopped };
}

/** The field once the background discovery's failure handler has written it; it logs right after, so read after each log line. */
async function untilField(api: TestApi, id: string, field: string): Promise<string> {
  for (;;) {
    const next = api.logged();
    const v = await api.redis.hget(campaignKeys(api.prefix, id).status, field);
    if (v !== null) return v;
    await next;
  }
}
