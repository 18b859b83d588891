import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { campaignKeys, DEFAULTS, parseConnections, type ConnectionRegistry } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { AUTH, startTestApi, until, type TestApi } from './support.js';

const SECRET_REF = 'UPSHIFT_TEST_API_HOOK_SECRET';

describe('GET /campaigns/:id/notifications', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 5 }, urls: ['http://127.0.0.1:9'], credentials: true });
  // The in-process worker reads the notifier's secret from process.env: set for this file only.
  beforeAll(() => void vi.stubEnv(SECRET_REF, 'whsec_api_test_0123456789'));
  afterAll(() => void vi.unstubAllEnvs());
  let api: TestApi;
  let receiver: Server;
  let url = '';
  let answered = 0;
  let registry: ConnectionRegistry;

  beforeEach(async () => {
    answered = 0;
    // 500 to the first request, 200 after: a delivery with a failed attempt behind it.
    receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(answered++ === 0 ? 500 : 200).end(answered === 1 ? 'down for a moment' : 'ok'));
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    registry = parseConnections(
      {
        connections: t.connections.connections,
        notifiers: {
          hook: { url, secretRef: SECRET_REF, privateNetwork: true },
          // The same loopback receiver without privateNetwork: the egress guard refuses it.
          guarded: { url, secretRef: SECRET_REF },
        },
      },
      'test registry',
    );
    api = await startTestApi({ ...t.producer, connections: registry });
  });
  afterEach(async () => {
    await api.close();
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
  });

  const call = (method: 'GET' | 'POST', path: string, payload?: object) =>
    api.app.inject({ method, url: path, headers: payload === undefined ? AUTH : { ...AUTH, 'content-type': 'application/json' }, ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }) });
  const spec = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    connection: { baseUrl: 'http://127.0.0.1:9', credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
    targets: [{ userId: 'u1' }, { userId: 'u2' }],
    ...extra,
  });
  interface Listed {
    deliveries: Record<string, unknown>[];
    truncated: boolean;
  }
  const list = async (id: string): Promise<Listed> => {
    const res = await call('GET', `/campaigns/${id}/notifications`);
    expect(res.statusCode).toBe(200);
    return res.json() as Listed;
  };

  it('each delivery with event, notifier, status, attempts, last error and times; pending until a worker sends them', async () => {
    expect((await call('POST', '/campaigns', spec('told', { notify: [{ to: 'hook', events: ['paused'] }, { to: 'guarded', events: ['paused'] }] }))).statusCode).toBe(201);
    expect(await list('told')).toEqual({ deliveries: [], truncated: false });
    expect((await call('POST', '/campaigns/told/pause')).statusCode).toBe(200);

    // No worker yet: recorded with the pause, waiting in Redis.
    const waiting = await list('told');
    expect(waiting.deliveries.map((d) => [d.eventId, d.event, d.notifier, d.status, d.attempts])).toEqual([
      ['told:1', 'paused', 'guarded', 'pending', 0],
      ['told:1', 'paused', 'hook', 'pending', 0],
    ]);
    expect(waiting.deliveries[0]).not.toHaveProperty('lastError');

    await t.startWorker({ connections: registry, notifyBackoffMs: 50 });
    const done = await until(
      () => list('told'),
      (l) => l.deliveries.every((d) => d.status !== 'pending'),
      'both deliveries settled',
    );
    const [guarded, hook] = done.deliveries;
    expect(guarded).toMatchObject({ eventId: 'told:1', notifier: 'guarded', status: 'failed', attempts: 1, lastError: expect.stringMatching(/^EGRESS_DENIED/) });
    expect(guarded!.failedAt).toEqual(expect.any(Number));
    expect(guarded).not.toHaveProperty('deliveredAt');
    expect(hook).toMatchObject({ eventId: 'told:1', notifier: 'hook', status: 'delivered', attempts: 2, lastError: 'HTTP 500 down for a moment' });
    expect(hook!.deliveredAt).toBeGreaterThanOrEqual(hook!.createdAt as number);
    expect(hook).not.toHaveProperty('nextAt');
    expect(answered).toBe(2);
  });

  it('lists the newest deliveries by event number and says truncated when there are more', async () => {
    expect((await call('POST', '/campaigns', spec('many', { notify: [{ to: 'hook', events: ['paused'] }] }))).statusCode).toBe(201);
    const key = campaignKeys(t.prefix, 'many').notify;
    // 105 events, written out of order: event 2 has two notifiers.
    for (const n of [...Array.from({ length: 105 }, (_, i) => 105 - i)]) {
      const record = JSON.stringify({ status: 'delivered', attempts: 1, createdAt: n, updatedAt: n });
      await t.redis.hset(key, `e:${n}`, JSON.stringify({ event: n % 2 ? 'paused' : 'completed' }), `d:${n}|hook`, record);
    }
    await t.redis.hset(key, 'd:2|guarded', JSON.stringify({ status: 'failed', attempts: 1, createdAt: 2, updatedAt: 2 }));
    const page = await list('many');
    expect(page.truncated).toBe(true);
    expect(page.deliveries).toHaveLength(DEFAULTS.notificationsListed);
    expect(page.deliveries.map((d) => d.eventId)).toEqual(Array.from({ length: 100 }, (_, i) => `many:${i + 6}`));
    expect(page.deliveries[0]).toMatchObject({ event: 'completed', notifier: 'hook', createdAt: 6 });
    // Under the cap: every one, not truncated.
    await t.redis.hdel(key, ...Array.from({ length: 100 }, (_, i) => `d:${i + 6}|hook`));
    expect(await list('many')).toMatchObject({ truncated: false, deliveries: [{ eventId: 'many:1' }, { eventId: 'many:2', notifier: 'guarded' }, { eventId: 'many:2', notifier: 'hook' }, { eventId: 'many:3' }, { eventId: 'many:4' }, { eventId: 'many:5' }] });
  });

  it('404 for an unknown campaign; 401 without the token', async () => {
    expect((await call('GET', '/campaigns/nope/notifications')).statusCode).toBe(404);
    expect((await api.app.inject({ method: 'GET', url: '/campaigns/nope/notifications' })).statusCode).toBe(401);
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await call('GET', '/openapi.json')).json() as { paths: Record<string, Record<string, { operationId: string }>> };
    expect(doc.paths['/campaigns/{id}/notifications']?.get?.operationId).toBe('getCampaignNotifications');
  });
});
