// First: the throwaway platform registers itself before anything reads the platform tables.
import { acmeSandbox } from '../support/platform-fixture.js';
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { createLogger, operationFor, platforms, registerPlatform, scrubError, secretHeaderPaths, streamReport, type ReportLine } from '../../src/shared/index.js';
import { startWorker, type RunningWorker } from '../../src/worker/index.js';
import { credentialRef } from '../support/fleet.js';
import { testConnectionsWith } from '../support/connections.js';
import { deletePrefix, newRedis, redisUrl, testPrefix, waitForCompletion } from '../support/harness.js';

/**
 * docs/ARCHITECTURE.md, "How to add a platform", followed by test/support/platform-fixture.ts:
 * one module, no other file touched, and the new platform works end to end.
 */
describe('adding a platform is one module', () => {
  const ref = credentialRef('acme');
  let sandbox: Sandbox;
  let redis: Redis;
  let prefix: string;
  let worker: RunningWorker | undefined;

  beforeAll(async () => {
    process.env[ref] = acmeSandbox.defaultKey;
    sandbox = await startSandbox({ record: true });
    redis = newRedis();
    prefix = testPrefix();
  });
  afterAll(async () => {
    await worker?.close();
    await sandbox.close();
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

  it('finds the operation under its platform', () => {
    expect(operationFor('acme.migrateFlow').targetIdField).toBe('flowId');
    expect(platforms().map((p) => p.name)).toEqual(['alloy', 'conductor', 'tallyfy', 'nected', 'acme']);
  });

  it('redacts its secret header from log lines', () => {
    let out = '';
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        out += chunk.toString();
        done();
      },
    });
    createLogger('info', 'test', sink).info({ req: { headers: { 'x-acme-auth': 'acme-secret-value' } } }, 'call');
    expect(out).toContain('"x-acme-auth":"[redacted]"');
    expect(out).not.toContain('acme-secret-value');
    // The API's request logs (src/producer/api/server.ts) take the same paths under `req.`.
    expect(secretHeaderPaths(['req.'])).toContain('req.headers["x-acme-auth"]');
  });

  it('scrubs its secret header from stored errors, and only registered headers', () => {
    const echoed = '401 {"x-acme-auth": "acme-secret-value", "x-trace-id": "trace-1234"}';
    const scrubbed = scrubError(echoed, [], 1000);
    expect(scrubbed).not.toContain('acme-secret-value');
    expect(scrubbed).toContain('trace-1234');
  });

  it('serves its route in the sandbox, with its own key, error shape, fixtures and option', async () => {
    sandbox.load({ acme: { flows: [{ flowId: 'f-0', version: 1 }] } });
    const call = (key: string) =>
      fetch(`${sandbox.url}/acme/v1/flows/f-0/migrate`, {
        method: 'POST',
        headers: { 'x-acme-auth': key, 'content-type': 'application/json' },
        body: JSON.stringify({ toVersion: 1 }),
      });
    const denied = await call('wrong');
    expect(denied.status).toBe(401);
    expect(await denied.json()).toEqual({ error: { status: 401, message: 'bad token' } });
    const current = await call(acmeSandbox.defaultKey);
    expect(await current.json()).toEqual({ migrated: false });
    expect(() => sandbox.load({ acme: { flows: [{ flowId: 'f-1' }] } })).toThrow(/invalid sandbox fixtures/);
    // Its own option, set like the common ones.
    const configure = (body: unknown) =>
      fetch(`${sandbox.url}/__sandbox/config`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await configure({ acmeLocked: 'yes' })).status).toBe(400);
    expect((await configure({ acmeLocked: true })).status).toBe(204);
    expect((await call(acmeSandbox.defaultKey)).status).toBe(423);
    expect((await configure({ acmeLocked: false })).status).toBe(204);
    sandbox.reset();
  });

  it('refuses a registration once the tables have been read (it would be left out of them)', () => {
    createLogger('silent');
    expect(() => registerPlatform({ name: 'late', secretHeaders: ['x-late'], operations: [] })).toThrow(/too late/);
  });

  it('runs a campaign against it through a worker', async () => {
    sandbox.load({ acme: { flows: [0, 1, 2].map((i) => ({ flowId: `f-${i}`, version: i === 2 ? 3 : 1 })) } });
    const connections = testConnectionsWith([sandbox.url], [ref]);
    const spec = {
      id: 'acme',
      connection: { baseUrl: sandbox.url, credentialRef: ref },
      operation: { type: 'acme.migrateFlow', toVersion: 3 },
      retry: { attempts: 2, backoffMs: 1 },
    };
    const targets = ['f-0', 'f-1', 'f-2', 'f-9'].map((flowId) => ({ flowId }));
    const { campaignId } = await enqueueCampaign(spec, targets, { redis, prefix, connections });
    worker = await startWorker({ redisUrl: redisUrl(), prefix, logLevel: 'silent' }, createLogger('silent'), { connections, concurrency: 4 });

    const status = await waitForCompletion(prefix, campaignId);
    expect(status).toMatchObject({ state: 'completed', total: 4, upgraded: 2, skipped: 1, failed: 1 });
    const lines = new Map<string, ReportLine>();
    for await (const line of streamReport(redis, prefix, campaignId)) lines.set(line.target, line);
    expect(lines.get('f-2')).toMatchObject({ outcome: 'skipped', reason: 'ALREADY_CURRENT' });
    expect(lines.get('f-9')).toMatchObject({ outcome: 'failed', reason: 'NOT_FOUND' });
    expect(sandbox.state().acme).toEqual({ flows: [0, 1, 2].map((i) => ({ flowId: `f-${i}`, version: 3 })) });
    expect(sandbox.received!.every((r) => r.headers['x-acme-auth'] === acmeSandbox.defaultKey)).toBe(true);
  });
});
