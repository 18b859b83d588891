import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign, undoCampaign } from '../../src/producer/index.js';
import { readStatus, streamReport, type ReportLine } from '../../src/shared/index.js';
import type { SandboxFixtures } from '../../src/sandbox/index.js';
import { setupDeployment } from '../support/deployment.js';
import { nectedGraph } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

async function report(redis: Redis, prefix: string, id: string): Promise<ReportLine[]> {
  const out: ReportLine[] = [];
  for await (const line of streamReport(redis, prefix, id)) out.push(line);
  return out.sort((a, b) => a.target.localeCompare(b.target));
}

/** Fields a platform sets on every write itself: a revert cannot (and need not) put them back. */
const VOLATILE = new Set(['createTime', 'updateTime', 'last_updated', 'checksum']);

/** The sandbox's state without the fields every write sets, for comparing pre-images. */
function comparable(state: SandboxFixtures): unknown {
  return JSON.parse(JSON.stringify(state, (k, v: unknown) => (VOLATILE.has(k) ? undefined : v)));
}

const N = 6;

/** One fleet per operation: what each target is before the upgrade. */
function fleet(): SandboxFixtures {
  return {
    conductor: {
      definitions: [
        ...[1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })),
        ...Array.from({ length: N }, (_, i) => ({
          name: `def-${i}`,
          version: 1,
          tasks: [{ name: 't', taskReferenceName: 't', type: 'SIMPLE' }],
          schemaVersion: 2,
          timeoutSeconds: 10 + i,
          description: `definition ${i}`,
          ownerEmail: 'old@acme.test',
        })),
      ],
      executions: Array.from({ length: N }, (_, i) => ({
        workflowId: `e-${i}`,
        workflowName: 'flow',
        workflowVersion: 1,
        status: 'RUNNING' as const,
        input: { region: 'eu', n: i },
      })),
    },
    nected: { workflows: Array.from({ length: N }, (_, i) => ({ entityId: `w-${i}`, branch: 'main', graph: nectedGraph(`wf ${i}`) })) },
    tallyfy: {
      runs: Array.from({ length: N }, (_, i) => ({ orgId: 'org', id: `run-${i}`, name: `run ${i}`, summary: `s${i}`, owner_id: 7, tags: ['a'], folders: [] })),
    },
  };
}

describe('undo', () => {
  const t = setupDeployment({ sandbox: { seed: 13, record: true }, credentials: true, workerDefaults: { concurrency: 4 } });
  const connection = (ref: string) => ({ baseUrl: t.sandbox.url, credentialRef: ref, timeoutMs: 2000 });

  const CASES = [
    {
      label: 'conductor.upgradeExecution',
      key: 'UPSHIFT_TEST_CONDUCTOR_KEY',
      operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2, workflowInput: { region: 'us' } },
      targets: Array.from({ length: N }, (_, i) => ({ workflowId: `e-${i}` })),
    },
    {
      label: 'conductor.updateDefinition',
      key: 'UPSHIFT_TEST_CONDUCTOR_KEY',
      operation: {
        type: 'conductor.updateDefinition',
        ownerEmail: 'ops@acme.test',
        patch: [
          { op: 'replace', path: '/timeoutSeconds', value: 600 },
          { op: 'remove', path: '/description' },
          { op: 'add', path: '/tasks/-', value: { name: 'u', taskReferenceName: 'u', type: 'SIMPLE' } },
        ],
      },
      targets: Array.from({ length: N }, (_, i) => ({ name: `def-${i}`, version: 1 })),
    },
    {
      label: 'nected.updateWorkflow',
      key: 'UPSHIFT_TEST_NECTED_KEY',
      operation: {
        type: 'nected.updateWorkflow',
        branch: 'main',
        patch: [
          { op: 'replace', path: '/settings/auditIO', value: true },
          { op: 'remove', path: '/description' },
        ],
      },
      targets: Array.from({ length: N }, (_, i) => ({ entityId: `w-${i}` })),
    },
    {
      label: 'tallyfy.updateRun',
      key: 'UPSHIFT_TEST_TALLYFY_KEY',
      operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'migrated', tags: ['b', 'c'] } },
      targets: Array.from({ length: N }, (_, i) => ({ runId: `run-${i}` })),
    },
  ] as const;

  for (const c of CASES) {
    it(`${c.label}: undo puts every target back exactly as it was; one edited since is left alone`, async () => {
      t.sandbox.load(fleet());
      const before = comparable(t.sandbox.state());
      const id = `u-${c.label.replace('.', '-')}`;
      await t.startWorker();
      await enqueueCampaign({ id, connection: connection(c.key), operation: c.operation }, c.targets, t.producer);
      expect(await waitForCompletion(t.prefix, id)).toMatchObject({ total: N, upgraded: N, failed: 0 });
      expect(comparable(t.sandbox.state())).not.toEqual(before);

      // A dry run of the undo reads every target and changes nothing.
      const upgraded = comparable(t.sandbox.state());
      const dry = await undoCampaign(id, { ...t.producer, dryRun: true });
      expect(dry.campaignId).toBe(`${id}-undo-dry`);
      expect(await waitForCompletion(t.prefix, dry.campaignId)).toMatchObject({ total: N, wouldUpgrade: N });
      expect(comparable(t.sandbox.state())).toEqual(upgraded);
      expect((await report(t.redis, t.prefix, dry.campaignId)).every((l) => l.reason === 'REVERTED')).toBe(true);

      const undone = await undoCampaign(id, t.producer);
      expect(undone).toMatchObject({ campaignId: `${id}-undo`, undoOf: id, total: N, created: true, cancelledOriginal: false });
      const status = await waitForCompletion(t.prefix, undone.campaignId);
      expect(status).toMatchObject({ total: N, upgraded: N, failed: 0, operation: `undo:${c.label}`, undoOf: id });
      expect((await readStatus(t.redis, t.prefix, id))?.undoCampaign).toBe(undone.campaignId);
      expect(comparable(t.sandbox.state())).toEqual(before);
      const lines = await report(t.redis, t.prefix, undone.campaignId);
      expect(lines.map((l) => l.reason)).toEqual(Array(N).fill('REVERTED'));
      // The report shows the target's own fields, not the data it carried.
      for (const l of lines) expect(Object.keys(l.fields).some((k) => k.startsWith('@'))).toBe(false);

      // Undo again: the same campaign, nothing new.
      expect(await undoCampaign(id, t.producer)).toMatchObject({ campaignId: undone.campaignId, created: false });
    });
  }
});
