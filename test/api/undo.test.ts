import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { campaignKeys, readStatus } from '../../src/shared/index.js';
import type { SandboxFixtures } from '../../src/sandbox/index.js';
import { setupDeployment } from '../support/deployment.js';
import { waitForCompletion, waitForState } from '../support/harness.js';
import { AUTH, startTestApi, type TestApi } from './support.js';

const JSON_BODY = { ...AUTH, 'content-type': 'application/json' };
const N = 4;

/** Tallyfy runs as they are before the upgrade: the undo must bring these names back. */
const runs = (): SandboxFixtures => ({
  tallyfy: { runs: Array.from({ length: N }, (_, i) => ({ orgId: 'org', id: `run-${i}`, name: `run ${i}`, summary: `s${i}`, owner_id: 7, tags: ['a'], folders: [] })) },
});

describe('POST /campaigns/:id/undo', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 5 }, credentials: true, workerDefaults: { concurrency: 4 } });
  let api: TestApi;
  beforeEach(async () => {
    api = await startTestApi(t.producer);
  });
  afterEach(() => api.close());

  const spec = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_TALLYFY_KEY', timeoutMs: 5000 },
    operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'migrated', tags: ['b'] } },
    targets: Array.from({ length: N }, (_, i) => ({ runId: `run-${i}` })),
    ...extra,
  });
  const call = (method: 'GET' | 'POST', url: string, payload?: string | object) =>
    api.app.inject({
      method,
      url,
      headers: payload === undefined ? AUTH : JSON_BODY,
      ...(payload === undefined ? {} : { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) }),
    });
  const names = () => (t.sandbox.state().tallyfy?.runs ?? []).map((r) => r.name).sort();
  const reportReasons = async (id: string) => {
    const res = await call('GET', `/campaigns/${id}/report`);
    return res.body.trim().split('\n').map((l) => (JSON.parse(l) as { reason: string }).reason);
  };

  it('makes the undo campaign (201), which puts every target back; again is 200 created:false; both ends link', async () => {
    t.sandbox.load(runs());
    await t.startWorker();
    expect((await call('POST', '/campaigns', spec('mig'))).statusCode).toBe(201);
    expect(await waitForCompletion(api.prefix, 'mig')).toMatchObject({ upgraded: N });
    expect(names()).toEqual(Array(N).fill('migrated'));

    const dry = await call('POST', '/campaigns/mig/undo', { dryRun: true });
    expect([dry.statusCode, dry.json()]).toEqual([201, { campaignId: 'mig-undo-dry', undoOf: 'mig', total: N, created: true, cancelledOriginal: false }]);
    expect(await waitForCompletion(api.prefix, 'mig-undo-dry')).toMatchObject({ dryRun: true, wouldUpgrade: N });
    expect(names()).toEqual(Array(N).fill('migrated'));

    // No body at all: a real undo.
    const undo = await call('POST', '/campaigns/mig/undo');
    expect([undo.statusCode, undo.json()]).toEqual([201, { campaignId: 'mig-undo', undoOf: 'mig', total: N, created: true, cancelledOriginal: false }]);
    expect(await waitForCompletion(api.prefix, 'mig-undo')).toMatchObject({ state: 'completed', operation: 'undo:tallyfy.updateRun', upgraded: N, failed: 0 });
    expect(await reportReasons('mig-undo')).toEqual(Array(N).fill('REVERTED'));
    expect(names()).toEqual(Array.from({ length: N }, (_, i) => `run ${i}`));
    expect((await call('GET', '/campaigns/mig')).json()).toMatchObject({ undoCampaign: 'mig-undo' });
    expect((await call('GET', '/campaigns/mig-undo')).json()).toMatchObject({ undoOf: 'mig' });

    const again = await call('POST', '/campaigns/mig/undo', {});
    expect([again.statusCode, again.json()]).toEqual([200, { campaignId: 'mig-undo', undoOf: 'mig', total: N, created: false, cancelledOriginal: false }]);

    // An undo campaign is not undone in turn: the original is run again instead.
    const twice = await call('POST', '/campaigns/mig-undo/undo');
    expect(twice.statusCode).toBe(409);
    expect(twice.json()).toMatchObject({ error: 'conflict', code: 'UNDO_NOT_POSSIBLE', message: expect.stringContaining('is an undo campaign itself') });
    expect((await call('POST', '/campaigns/mig-undo-dry/undo')).json()).toMatchObject({ code: 'UNDO_NOT_POSSIBLE' });
  });

  it('cancels a campaign still running first, and takes back what it had upgraded', async () => {
    t.sandbox.load(runs());
    await t.startWorker();
    // Waits at a manual gate after two targets: still running as far as undo is concerned.
    expect((await call('POST', '/campaigns', spec('gated', { rollout: { steps: [{ count: 2 }], gate: 'manual' } }))).statusCode).toBe(201);
    expect(await waitForState(api.prefix, 'gated', ['gated'])).toMatchObject({ upgraded: 2 });

    const undo = await call('POST', '/campaigns/gated/undo');
    expect([undo.statusCode, undo.json()]).toEqual([201, { campaignId: 'gated-undo', undoOf: 'gated', total: 2, created: true, cancelledOriginal: true }]);
    expect(await readStatus(api.redis, api.prefix, 'gated')).toMatchObject({ state: 'cancelled', upgraded: 2, skipped: N - 2 });
    expect(await waitForCompletion(api.prefix, 'gated-undo')).toMatchObject({ upgraded: 2 });
    expect(names()).toEqual(Array.from({ length: N }, (_, i) => `run ${i}`));
  });

  it('404 for an unknown campaign, 409 for a dry run, 410 once its data expired, 400 for a bad body, 401 without the token', async () => {
    for (const url of ['/campaigns/nope/undo', '/campaigns/a:b/undo']) {
      const res = await call('POST', url);
      expect(res.statusCode, url).toBe(404);
      expect(res.json(), url).toMatchObject({ error: 'not_found', message: expect.stringContaining('no campaign') });
    }

    // No worker: nothing is called, the campaigns stay as enqueued.
    expect((await call('POST', '/campaigns', spec('preview', { dryRun: true }))).statusCode).toBe(201);
    const dry = await call('POST', '/campaigns/preview/undo');
    expect([dry.statusCode, dry.json().code]).toEqual([409, 'UNDO_NOT_POSSIBLE']);

    expect((await call('POST', '/campaigns', spec('gone'))).statusCode).toBe(201);
    for (const body of [{ dryRun: 'yes' }, { dryRun: true, colour: 'red' }, [true], '{"dryRun":']) {
      const res = await call('POST', '/campaigns/gone/undo', body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json().error).toBe('invalid_input');
    }
    expect((await call('POST', '/campaigns/gone/undo', { dryRun: 'yes' })).json()).toMatchObject({ source: 'body', issues: [{ path: ['dryRun'] }] });
    expect((await api.app.inject({ method: 'POST', url: '/campaigns/gone/undo' })).statusCode).toBe(401);
    // Nothing above made an undo campaign or touched the original.
    expect(await readStatus(api.redis, api.prefix, 'gone-undo')).toBeNull();
    expect(await readStatus(api.redis, api.prefix, 'gone')).toMatchObject({ state: 'running', pending: N });

    // Retention ran out: the spec is gone, the id still listed.
    await api.redis.del(campaignKeys(api.prefix, 'gone').spec);
    const expired = await call('POST', '/campaigns/gone/undo');
    expect(expired.statusCode).toBe(410);
    expect(expired.json()).toMatchObject({ error: 'not_found', code: 'CAMPAIGN_EXPIRED' });
  });
});
