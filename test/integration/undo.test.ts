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

/** `base` with the records of `over` in place of the ones with the same identity (as the sandbox's load does). */
function merged(base: unknown, over: unknown): unknown {
  const b = base as Record<string, Record<string, Record<string, unknown>[]>>;
  const o = over as Record<string, Record<string, Record<string, unknown>[]>>;
  const id = (r: Record<string, unknown>) => String(r.workflowId ?? r.entityId ?? r.id ?? `${String(r.name)}@${String(r.version)}`);
  const out = structuredClone(b);
  for (const [platform, lists] of Object.entries(o)) {
    for (const [list, records] of Object.entries(lists)) {
      for (const r of records) {
        const at = out[platform]![list]!.findIndex((x) => id(x) === id(r));
        out[platform]![list]![at] = r;
      }
    }
  }
  return out;
}

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
      // Someone gave the execution other input after the upgrade.
      edit: (s: SandboxFixtures): SandboxFixtures => ({ conductor: { executions: [{ ...s.conductor!.executions!.find((e) => e.workflowId === 'e-0')!, input: { region: 'ap', n: 0 } }] } }),
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
      edit: (s: SandboxFixtures): SandboxFixtures => ({ conductor: { definitions: [{ ...s.conductor!.definitions!.find((d) => d.name === 'def-0')!, timeoutSeconds: 5 }] } }),
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
      // Saved by hand: a new checksum, as every save gets.
      edit: (s: SandboxFixtures): SandboxFixtures => {
        const { checksum: _checksum, ...w } = s.nected!.workflows!.find((x) => x.entityId === 'w-0')!;
        return { nected: { workflows: [{ ...w, graph: { ...w.graph, name: 'renamed by hand' } }] } };
      },
    },
    {
      label: 'tallyfy.updateRun',
      key: 'UPSHIFT_TEST_TALLYFY_KEY',
      operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'migrated', tags: ['b', 'c'] } },
      targets: Array.from({ length: N }, (_, i) => ({ runId: `run-${i}` })),
      edit: (s: SandboxFixtures): SandboxFixtures => ({ tallyfy: { runs: [{ ...s.tallyfy!.runs!.find((r) => r.id === 'run-0')!, tags: ['hand'] }] } }),
    },
  ] as const;

  for (const c of CASES) {
    it(`${c.label}: undo puts every target back exactly as it was, leaves one edited since alone; its dry run changes nothing`, async () => {
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

      // Target 0 is changed by hand after the upgrade: the undo must leave it as the person left it.
      t.sandbox.load(c.edit(t.sandbox.state()));
      const edited = comparable(c.edit(t.sandbox.state()));

      const undone = await undoCampaign(id, t.producer);
      expect(undone).toMatchObject({ campaignId: `${id}-undo`, undoOf: id, total: N, created: true, cancelledOriginal: false });
      const status = await waitForCompletion(t.prefix, undone.campaignId);
      expect(status).toMatchObject({ total: N, upgraded: N - 1, skipped: 1, failed: 0, operation: `undo:${c.label}`, undoOf: id });
      expect((await readStatus(t.redis, t.prefix, id))?.undoCampaign).toBe(undone.campaignId);
      // Every other target is exactly as before the upgrade; the edited one is as edited.
      expect(comparable(t.sandbox.state())).toEqual(merged(before, edited));
      const lines = await report(t.redis, t.prefix, undone.campaignId);
      expect(lines.map((l) => l.reason)).toEqual(['CHANGED_SINCE_UPGRADE', ...Array(N - 1).fill('REVERTED')]);
      // The report shows the target's own fields, not the data it carried.
      for (const l of lines) expect(Object.keys(l.fields).some((k) => k.startsWith('@'))).toBe(false);

      // Undo again: the same campaign, nothing new.
      expect(await undoCampaign(id, t.producer)).toMatchObject({ campaignId: undone.campaignId, created: false });
    });
  }
});
