import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { streamReport, type ReportLine } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { conductorFleet, nectedGraph } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

async function report(redis: Redis, prefix: string, id: string): Promise<ReportLine[]> {
  const out: ReportLine[] = [];
  for await (const line of streamReport(redis, prefix, id)) out.push(line);
  return out;
}

/** `verify: true` against the sandbox: every accepted write is read back before it counts. */
describe('verify', () => {
  const t = setupDeployment({ sandbox: { seed: 13, record: true }, credentials: true, workerDefaults: { concurrency: 4 } });
  const connection = (ref: string) => ({ baseUrl: t.sandbox.url, credentialRef: ref, timeoutMs: 2000 });
  const calls = (method: string, prefix: string) => t.sandbox.received!.filter((r) => r.method === method && r.path.startsWith(prefix));

  it('conductor.upgradeExecution: upgrades every execution, each read once before and once after', async () => {
    const n = 6;
    t.sandbox.load(conductorFleet('e', n));
    const { campaignId } = await enqueueCampaign(
      { id: 'vexec', connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'), operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 }, verify: true },
      Array.from({ length: n }, (_, i) => ({ workflowId: `e-${i}` })),
      t.producer,
    );
    await t.startWorker();
    expect(await waitForCompletion(t.prefix, campaignId)).toMatchObject({ total: n, upgraded: n, failed: 0 });
    for (let i = 0; i < n; i++) {
      expect(calls('GET', `/api/workflow/e-${i}?`), `reads of e-${i}`).toHaveLength(2);
      expect(calls('POST', `/api/workflow/e-${i}/upgrade`)).toHaveLength(1);
    }
    expect((await report(t.redis, t.prefix, campaignId)).every((l) => l.reason === 'UPGRADED')).toBe(true);
  });

  it('conductor.updateDefinition with newVersion: reads the new version back', async () => {
    const def = (name: string) => ({ name, version: 1, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'old@acme.test' });
    t.sandbox.load({ conductor: { definitions: [def('a'), def('b'), def('c')] } });
    const { campaignId } = await enqueueCampaign(
      {
        id: 'vdefs',
        connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'),
        operation: { type: 'conductor.updateDefinition', ownerEmail: 'ops@acme.test', newVersion: true, patch: [{ op: 'replace', path: '/timeoutSeconds', value: 60 }] },
        verify: true,
      },
      [{ name: 'a' }, { name: 'b' }, { name: 'c' }],
      t.producer,
    );
    await t.startWorker();
    expect(await waitForCompletion(t.prefix, campaignId)).toMatchObject({ total: 3, upgraded: 3, failed: 0 });
    for (const name of ['a', 'b', 'c']) {
      expect(calls('GET', `/api/metadata/workflow/${name}`), `reads of ${name}`).toHaveLength(2);
      const versions = t.sandbox.state().conductor!.definitions!.filter((d) => d.name === name);
      expect(versions.find((d) => d.version === 2)).toMatchObject({ timeoutSeconds: 60 });
    }
  });

  it('nected.updateWorkflow and tallyfy.updateRun: Nected reads the graph again, Tallyfy makes no extra call', async () => {
    t.sandbox.load({
      nected: { workflows: Array.from({ length: 4 }, (_, i) => ({ entityId: `w-${i}`, branch: 'main', graph: nectedGraph(`wf ${i}`) })) },
      tallyfy: { runs: Array.from({ length: 4 }, (_, i) => ({ orgId: 'org', id: `run-${i}`, name: 'old' })) },
    });
    const nected = await enqueueCampaign(
      {
        id: 'vnected',
        connection: connection('UPSHIFT_TEST_NECTED_KEY'),
        operation: { type: 'nected.updateWorkflow', branch: 'main', patch: [{ op: 'replace', path: '/settings/auditIO', value: true }] },
        verify: true,
      },
      Array.from({ length: 4 }, (_, i) => ({ entityId: `w-${i}` })),
      t.producer,
    );
    const tallyfy = await enqueueCampaign(
      // undo: false, so that the only calls are the updates: verify adds none.
      { id: 'vtally', connection: connection('UPSHIFT_TEST_TALLYFY_KEY'), operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'new', tags: ['t'] } }, verify: true, undo: false },
      Array.from({ length: 4 }, (_, i) => ({ runId: `run-${i}` })),
      t.producer,
    );
    await t.startWorker();
    expect(await waitForCompletion(t.prefix, nected.campaignId)).toMatchObject({ total: 4, upgraded: 4, failed: 0 });
    expect(await waitForCompletion(t.prefix, tallyfy.campaignId)).toMatchObject({ total: 4, upgraded: 4, failed: 0 });
    for (let i = 0; i < 4; i++) {
      expect(calls('GET', `/dev/v1/workflow/w-${i}`), `reads of w-${i}`).toHaveLength(2);
      expect(calls('PATCH', `/dev/v1/workflow/w-${i}`)).toHaveLength(1);
    }
    expect(t.sandbox.received!.filter((r) => r.path.startsWith('/organizations/')).map((r) => r.method)).toEqual(Array(4).fill('PUT'));
  });

  it('catches writes the platform answered 2xx and never applied (sandbox dropWriteRate); without verify they count as upgraded', async () => {
    const n = 20;
    const fleet = (prefix: string) => conductorFleet(prefix, n);
    t.sandbox.load(fleet('d'));
    t.sandbox.configure({ dropWriteRate: 0.5 });
    const spec = (id: string, verify: boolean) => ({
      id,
      connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'),
      operation: { type: 'conductor.upgradeExecution' as const, name: 'flow', version: 2 },
      retry: { attempts: 1 },
      verify,
    });
    const verified = await enqueueCampaign(spec('vdrop', true), Array.from({ length: n }, (_, i) => ({ workflowId: `d-${i}` })), t.producer);
    await t.startWorker();
    const status = await waitForCompletion(t.prefix, verified.campaignId);
    const dropped = t.sandbox.stats().faults.droppedWrites;
    expect(dropped).toBeGreaterThan(0);
    expect(status).toMatchObject({ total: n, upgraded: n - dropped, failed: dropped });

    const executions = new Map(t.sandbox.state().conductor!.executions!.map((e) => [e.workflowId, e.workflowVersion]));
    const droppedTargets = t.sandbox.received!.filter((r) => r.fault === 'dropped').map((r) => /\/api\/workflow\/([^/]+)\/upgrade/.exec(r.path)![1]);
    const lines = await report(t.redis, t.prefix, verified.campaignId);
    const failed = lines.filter((l) => l.outcome === 'failed');
    expect(failed.map((l) => l.target).sort()).toEqual([...droppedTargets].sort());
    for (const l of failed) {
      expect(l).toMatchObject({ reason: 'VERIFY_MISMATCH', attempts: 1 });
      expect(executions.get(l.target)).toBe(1);
    }
    for (const l of lines.filter((x) => x.outcome === 'upgraded')) expect(executions.get(l.target)).toBe(2);

    // The same faults without verify: every dropped write is recorded as upgraded.
    t.sandbox.load(fleet('u'));
    const before = t.sandbox.stats().faults.droppedWrites;
    const unverified = await enqueueCampaign(spec('vdrop-off', false), Array.from({ length: n }, (_, i) => ({ workflowId: `u-${i}` })), t.producer);
    expect(await waitForCompletion(t.prefix, unverified.campaignId)).toMatchObject({ total: n, upgraded: n, failed: 0 });
    expect(t.sandbox.stats().faults.droppedWrites).toBeGreaterThan(before);
  });
});
