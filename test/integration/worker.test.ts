import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { readStatus, streamReport, type ReportLine } from '../../src/shared/index.js';
import { setupDeployment, type WorkerStartOptions } from '../support/deployment.js';
import { alloyFleet, nectedGraph } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

async function report(redis: Redis, prefix: string, id: string): Promise<Map<string, ReportLine>> {
  const out = new Map<string, ReportLine>();
  for await (const line of streamReport(redis, prefix, id)) out.set(line.target, line);
  return out;
}

describe('workers against the sandbox', () => {
  const t = setupDeployment({ sandbox: { seed: 7 }, credentials: true, workerDefaults: { concurrency: 8 } });
  const work = (opts: WorkerStartOptions = {}) => t.startWorker(opts);
  const connection = (ref: string) => ({ baseUrl: t.sandbox.url, credentialRef: ref, timeoutMs: 2000 });
  const enqueue = (spec: Record<string, unknown>, targets: unknown[]) => enqueueCampaign(spec, targets, t.producer);

  it('alloy.upgradeWorkflow: upgrades installs and fails each documented error with its reason', async () => {
    const fleet = alloyFleet(20);
    t.sandbox.load(fleet.fixtures);
    t.sandbox.load({
      alloy: {
        installs: [
          { workflowId: 'wf-1', userId: 'needs-reinstall', version: 1, reinstallRequired: true },
          { workflowId: 'wf-1', userId: 'locked', version: 1, forbidden: true },
        ],
      },
    });
    const targets = [...fleet.targets, { userId: 'needs-reinstall' }, { userId: 'locked' }, { userId: 'ghost?#%2F' }];
    const { campaignId } = await enqueue(
      { id: 'alloy', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' }, retry: { attempts: 3, backoffMs: 1 } },
      targets,
    );
    await work();
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status).toMatchObject({ state: 'completed', total: 23, upgraded: 20, skipped: 0, failed: 3, retries: 0 });
    expect(status.finishedAt).toBeGreaterThanOrEqual(status.createdAt!);
    const lines = await report(t.redis, t.prefix, campaignId);
    expect(lines.get('needs-reinstall')).toMatchObject({ outcome: 'failed', reason: 'REINSTALL_REQUIRED', attempts: 1 });
    expect(lines.get('locked')).toMatchObject({ outcome: 'failed', reason: 'FORBIDDEN', attempts: 1 });
    expect(lines.get('ghost?#%2F')).toMatchObject({ outcome: 'failed', reason: 'NOT_FOUND', attempts: 1 });
    expect(lines.get('user-3')).toMatchObject({ outcome: 'upgraded', reason: 'UPGRADED', error: null });
    const installs = t.sandbox.state().alloy!.installs!.filter((i) => i.userId.startsWith('user-'));
    expect(installs.every((i) => i.version === 2)).toBe(true);
  });

  it('conductor.upgradeExecution: upgrades running executions, skips ended and current ones', async () => {
    t.sandbox.load({
      conductor: {
        definitions: [1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })),
        executions: [
          ...Array.from({ length: 10 }, (_, i) => ({ workflowId: `e-${i}`, workflowName: 'flow', workflowVersion: 1, status: 'RUNNING' as const })),
          { workflowId: 'paused', workflowName: 'flow', workflowVersion: 1, status: 'PAUSED' },
          { workflowId: 'done', workflowName: 'flow', workflowVersion: 1, status: 'COMPLETED' },
          { workflowId: 'current', workflowName: 'flow', workflowVersion: 2, status: 'RUNNING' },
          { workflowId: 'other', workflowName: 'billing', workflowVersion: 1, status: 'RUNNING' },
        ],
      },
    });
    const ids = [...Array.from({ length: 10 }, (_, i) => `e-${i}`), 'paused', 'done', 'current', 'other'];
    const { campaignId } = await enqueue(
      {
        id: 'cond',
        connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'),
        operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2, workflowInput: { migrated: true } },
      },
      ids.map((workflowId) => ({ workflowId })),
    );
    await work();
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status).toMatchObject({ total: 14, upgraded: 11, skipped: 2, failed: 1 });
    const lines = await report(t.redis, t.prefix, campaignId);
    expect(lines.get('done')?.reason).toBe('NOT_RUNNING');
    expect(lines.get('current')?.reason).toBe('ALREADY_CURRENT');
    expect(lines.get('other')?.reason).toBe('WRONG_WORKFLOW');
    const e0 = t.sandbox.state().conductor!.executions!.find((e) => e.workflowId === 'e-0')!;
    expect(e0).toMatchObject({ workflowVersion: 2, input: { migrated: true } });
  });

  it('conductor.updateDefinition: patches definitions, skips no-ops, fails broken preconditions', async () => {
    const def = (name: string, timeoutSeconds: number) => ({ name, version: 1, tasks: [], schemaVersion: 2, timeoutSeconds, ownerEmail: 'old@acme.test' });
    t.sandbox.load({ conductor: { definitions: [def('a', 0), def('b', 0), def('c', 60), def('d', 5)] } });
    const { campaignId } = await enqueue(
      {
        id: 'defs',
        connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'),
        operation: {
          type: 'conductor.updateDefinition',
          ownerEmail: 'ops@acme.test',
          patch: [
            { op: 'test', path: '/schemaVersion', value: 2 },
            { op: 'replace', path: '/timeoutSeconds', value: 60 },
          ],
        },
      },
      [{ name: 'a' }, { name: 'b', version: 1 }, { name: 'c' }, { name: 'missing' }],
    );
    await work();
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status).toMatchObject({ total: 4, upgraded: 2, skipped: 1, failed: 1 });
    const lines = await report(t.redis, t.prefix, campaignId);
    expect(lines.get('c')?.reason).toBe('ALREADY_CURRENT');
    expect(lines.get('missing')?.reason).toBe('NOT_FOUND');
    const stored = t.sandbox.state().conductor!.definitions!.find((d) => d.name === 'a')!;
    expect(stored).toMatchObject({ timeoutSeconds: 60, ownerEmail: 'ops@acme.test', version: 1 });
  });

  it('tallyfy.updateRun: updates runs with the documented headers', async () => {
    t.sandbox.load({
      tallyfy: {
        runs: [
          ...Array.from({ length: 8 }, (_, i) => ({ orgId: 'org', id: `run-${i}`, name: 'old' })),
          { orgId: 'org', id: 'private', name: 'old', forbidden: true },
        ],
      },
    });
    const { campaignId } = await enqueue(
      { id: 'tally', connection: connection('UPSHIFT_TEST_TALLYFY_KEY'), operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'new', tags: ['t'] } } },
      [...Array.from({ length: 8 }, (_, i) => ({ runId: `run-${i}` })), { runId: 'private' }, { runId: 'nope' }],
    );
    await work();
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status).toMatchObject({ total: 10, upgraded: 8, failed: 2 });
    expect(t.sandbox.state().tallyfy!.runs!.find((r) => r.id === 'run-1')).toMatchObject({ name: 'new', tags: ['t'] });
  });

  it('nected.updateWorkflow: re-fetches on checksum conflicts and counts them', async () => {
    t.sandbox.configure({ conflictRate: 0.3 });
    t.sandbox.load({ nected: { workflows: Array.from({ length: 30 }, (_, i) => ({ entityId: `w-${i}`, branch: 'main', graph: nectedGraph(`wf ${i}`) })) } });
    const { campaignId } = await enqueue(
      {
        id: 'nected',
        connection: connection('UPSHIFT_TEST_NECTED_KEY'),
        operation: { type: 'nected.updateWorkflow', branch: 'main', conflictRetries: 20, patch: [{ op: 'replace', path: '/settings/auditIO', value: true }] },
      },
      Array.from({ length: 30 }, (_, i) => ({ entityId: `w-${i}` })),
    );
    await work();
    const status = await waitForCompletion(t.prefix, campaignId);
    const stats = t.sandbox.stats();
    expect(stats.faults.conflicts).toBeGreaterThan(0);
    expect(status).toMatchObject({ total: 30, upgraded: 30, conflicts: stats.faults.conflicts });
    const wfs = t.sandbox.state().nected!.workflows!;
    expect(wfs.every((w) => (w.graph.settings as { auditIO: boolean }).auditIO)).toBe(true);
    // the concurrent edit survived: the re-fetch patched the newer graph instead of overwriting it
    expect(wfs.some((w) => String(w.graph.description).startsWith('concurrent edit'))).toBe(true);
  });

  it('nected: gives up after conflictRetries with CONFLICT_RETRIES_EXHAUSTED', async () => {
    t.sandbox.configure({ conflictRate: 1, conflictStatus: 400 });
    t.sandbox.load({ nected: { workflows: [{ entityId: 'w', graph: nectedGraph('w') }] } });
    const { campaignId } = await enqueue(
      { id: 'stuck', connection: connection('UPSHIFT_TEST_NECTED_KEY'), operation: { type: 'nected.updateWorkflow', conflictRetries: 2, patch: [{ op: 'replace', path: '/name', value: 'x' }] } },
      [{ entityId: 'w' }],
    );
    await work();
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status).toMatchObject({ failed: 1, conflicts: 3 });
    expect((await report(t.redis, t.prefix, campaignId)).get('w')?.reason).toBe('CONFLICT_RETRIES_EXHAUSTED');
  });

  it('retries 5xx and 429 until they clear, counting each retry once', async () => {
    t.sandbox.configure({ failRate: 0.3, throttleRate: 0.1, retryAfterS: 0 });
    const fleet = alloyFleet(100);
    t.sandbox.load(fleet.fixtures);
    const { campaignId } = await enqueue(
      { id: 'flaky', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' }, retry: { attempts: 20, backoffMs: 1 } },
      fleet.targets,
    );
    await work({ concurrency: 16 });
    const status = await waitForCompletion(t.prefix, campaignId);
    const { faults } = t.sandbox.stats();
    expect(faults.failed + faults.throttled).toBeGreaterThan(10);
    // 5xx use attempts; 429s pause the connection and do not.
    expect(status).toMatchObject({ upgraded: 100, failed: 0, retries: faults.failed, retryAfterWaits: faults.throttled, pending: 0, active: 0 });
    const lines = [...(await report(t.redis, t.prefix, campaignId)).values()];
    const retried = lines.filter((l) => l.attempts > 1 || l.retryAfterWaits > 0);
    expect(retried.length).toBeGreaterThan(0);
    // the last transient error is kept on an upgraded target, with its code
    expect(retried.every((l) => l.error !== null && /SERVER_ERROR|THROTTLED/.test(l.error))).toBe(true);
  });

  it('fails with RETRIES_EXHAUSTED after retry.attempts, scrubbing the error', async () => {
    t.sandbox.configure({ failRate: 1, retryAfterS: 0 });
    const fleet = alloyFleet(5);
    t.sandbox.load(fleet.fixtures);
    const { campaignId } = await enqueue(
      { id: 'down', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' }, retry: { attempts: 3, backoffMs: 1 } },
      fleet.targets,
    );
    await work();
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status).toMatchObject({ failed: 5, retries: 10 });
    expect(t.sandbox.stats().requests).toBe(15);
    for (const line of (await report(t.redis, t.prefix, campaignId)).values()) {
      expect(line).toMatchObject({ outcome: 'failed', reason: 'RETRIES_EXHAUSTED', attempts: 3 });
      expect(line.error).toMatch(/^SERVER_ERROR: alloy upgrade: HTTP 5\d\d/);
    }
  });

  it('fails CREDENTIAL_MISSING when the worker lacks the variable, and never stores a secret', async () => {
    const fleet = alloyFleet(3);
    t.sandbox.load(fleet.fixtures);
    const a = await enqueue({ id: 'nokey', connection: connection('UPSHIFT_TEST_UNSET_VAR'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } }, fleet.targets);
    const b = await enqueue({ id: 'key', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } }, fleet.targets);
    await work();
    expect(await waitForCompletion(t.prefix, a.campaignId)).toMatchObject({ failed: 3 });
    expect(await waitForCompletion(t.prefix, b.campaignId)).toMatchObject({ upgraded: 3 });
    expect((await report(t.redis, t.prefix, a.campaignId)).get('user-0')?.reason).toBe('CREDENTIAL_MISSING');
    const keys = await t.redis.keys(`${t.prefix}:*`);
    for (const key of keys) {
      const type = await t.redis.type(key);
      const dump = type === 'hash' ? JSON.stringify(await t.redis.hgetall(key)) : type === 'string' ? await t.redis.get(key) : type === 'list' ? JSON.stringify(await t.redis.lrange(key, 0, -1)) : '';
      expect(dump ?? '').not.toContain(process.env.UPSHIFT_TEST_ALLOY_KEY);
    }
  });

  it('graceful shutdown: in-flight targets finish, nothing is left active', async () => {
    t.sandbox.configure({ latencyMs: 300 });
    const fleet = alloyFleet(4);
    t.sandbox.load(fleet.fixtures);
    const allActive = await t.jobsActive(4);
    const { campaignId } = await enqueue({ id: 'grace', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } }, fleet.targets);
    const w = await t.startWorker({ concurrency: 4 });
    await allActive.reached;
    await w.close();
    const status = await readStatus(t.redis, t.prefix, campaignId);
    expect(status).toMatchObject({ state: 'completed', upgraded: 4 });
    expect(await t.redis.llen(`${t.prefix}:targets:active`)).toBe(0);
  });
});
