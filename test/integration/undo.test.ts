import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { cancelCampaign, enqueueCampaign, retryCampaign, undoCampaign } from '../../src/producer/index.js';
import { campaignKeys, eventsChannel, flushOutbox, readStatus, schedulerKeys, streamReport, type ReportLine } from '../../src/shared/index.js';
import type { SandboxFixtures } from '../../src/sandbox/index.js';
import { setupDeployment } from '../support/deployment.js';
import { conductorFleet, nectedGraph } from '../support/fleet.js';
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

      // The original is not run again behind its undo.
    await expect(retryCampaign(id, t.producer)).rejects.toMatchObject({ code: 'CAMPAIGN_STATE_CONFLICT', message: expect.stringMatching(/taken back/) });
    // Undo again: the same campaign, nothing new.
      expect(await undoCampaign(id, t.producer)).toMatchObject({ campaignId: undone.campaignId, created: false });
    });
  }

  it('records why a target cannot be reverted: Alloy, a new definition version, a campaign run with undo: false (which also saves Tallyfy its read)', async () => {
    t.sandbox.load({
      ...fleet(),
      alloy: { workflows: { wf: { latestVersion: 2 } }, installs: [1, 2, 3].map((i) => ({ workflowId: 'wf', userId: `user-${i}`, version: 1 })) },
    });
    await t.startWorker();
    const runs = [
      { id: 'nr-alloy', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' }, targets: [1, 2, 3].map((i) => ({ userId: `user-${i}` })) },
      {
        id: 'nr-newversion',
        connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'),
        operation: { type: 'conductor.updateDefinition', ownerEmail: 'ops@acme.test', newVersion: true, patch: [{ op: 'replace', path: '/timeoutSeconds', value: 60 }] },
        targets: [{ name: 'def-1' }, { name: 'def-2' }],
      },
      {
        id: 'nr-off',
        connection: connection('UPSHIFT_TEST_TALLYFY_KEY'),
        operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'x' } },
        undo: false,
        targets: [{ runId: 'run-1' }, { runId: 'run-2' }],
      },
    ];
    for (const { targets, ...spec } of runs) {
      await enqueueCampaign(spec, targets, t.producer);
      expect(await waitForCompletion(t.prefix, spec.id)).toMatchObject({ upgraded: targets.length });
    }
    // undo: false made no read of the runs: only their updates.
    expect(t.sandbox.received!.filter((r) => r.path.startsWith('/organizations/')).map((r) => r.method)).toEqual(['PUT', 'PUT']);
    const expected = { 'nr-alloy': /only moves a user to the latest version/, 'nr-newversion': /new definition version/, 'nr-off': /ran with undo: false/ };
    for (const { id, targets } of runs) {
      const undone = await undoCampaign(id, t.producer);
      expect(await waitForCompletion(t.prefix, undone.campaignId)).toMatchObject({ total: targets.length, failed: targets.length });
      for (const l of await report(t.redis, t.prefix, undone.campaignId)) {
        expect(l).toMatchObject({ outcome: 'failed', reason: 'NOT_REVERTIBLE', attempts: 1 });
        expect(l.error).toMatch(expected[id as keyof typeof expected]);
      }
    }
    // Nothing was written back.
    expect(t.sandbox.received!.filter((r) => r.path.startsWith('/organizations/')).map((r) => r.method)).toEqual(['PUT', 'PUT']);
  });

  it('refuses to undo an undo campaign or a dry run, and an unknown campaign', async () => {
    t.sandbox.load(fleet());
    await t.startWorker();
    const spec = { connection: connection('UPSHIFT_TEST_TALLYFY_KEY'), operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'x' } } };
    await enqueueCampaign({ ...spec, id: 'np-real' }, [{ runId: 'run-1' }], t.producer);
    await enqueueCampaign({ ...spec, id: 'np-dry', dryRun: true }, [{ runId: 'run-2' }], t.producer);
    await waitForCompletion(t.prefix, 'np-real');
    await waitForCompletion(t.prefix, 'np-dry');
    const { campaignId } = await undoCampaign('np-real', t.producer);
    await waitForCompletion(t.prefix, campaignId);
    await expect(undoCampaign(campaignId, t.producer)).rejects.toMatchObject({ code: 'UNDO_NOT_POSSIBLE', message: expect.stringMatching(/undo campaign itself/) });
    await expect(undoCampaign('np-dry', t.producer)).rejects.toMatchObject({ code: 'UNDO_NOT_POSSIBLE', message: expect.stringMatching(/dry run/) });
    await expect(undoCampaign('np-none', t.producer)).rejects.toMatchObject({ code: 'CAMPAIGN_NOT_FOUND' });
  });

  it('answers clearly when the data expired: the whole campaign (CAMPAIGN_EXPIRED), or one record (UNDO_DATA_EXPIRED)', async () => {
    t.sandbox.load(fleet());
    await t.startWorker();
    const spec = { connection: connection('UPSHIFT_TEST_TALLYFY_KEY'), operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'x' } } };
    await enqueueCampaign({ ...spec, id: 'ex-part' }, [1, 2, 3].map((i) => ({ runId: `run-${i}` })), t.producer);
    await enqueueCampaign({ ...spec, id: 'ex-all' }, [{ runId: 'run-4' }], t.producer);
    await waitForCompletion(t.prefix, 'ex-part');
    await waitForCompletion(t.prefix, 'ex-all');

    // One record gone (its marker kept): that target fails, the others are reverted.
    // The worker closed first: its archiver's last batch cannot store the record again after it is gone.
    await t.closeWorkers();
    const keys = campaignKeys(t.prefix, 'ex-part');
    await flushOutbox(t.redis, t.scripts, t.prefix, 'ex-part');
    expect(await t.redis.hdel(keys.records, 'run-2')).toBe(1);
    await t.startWorker();
    const part = await undoCampaign('ex-part', t.producer);
    expect(await waitForCompletion(t.prefix, part.campaignId)).toMatchObject({ total: 3, upgraded: 2, failed: 1 });
    const lines = await report(t.redis, t.prefix, part.campaignId);
    expect(lines.map((l) => [l.target, l.reason])).toEqual([['run-1', 'REVERTED'], ['run-2', 'UNDO_DATA_EXPIRED'], ['run-3', 'REVERTED']]);
    expect(lines[1]!.error).toMatch(/had expired/);

    // The whole campaign gone as its retention removes it; it is still named in the index.
    const all = campaignKeys(t.prefix, 'ex-all');
    await t.redis.del(all.status, all.spec, all.outcomes, all.outbox, all.records, all.groups, all.meta, all.attempts);
    await expect(undoCampaign('ex-all', t.producer)).rejects.toMatchObject({ errorCode: 'CAMPAIGN_EXPIRED', message: expect.stringMatching(/has expired/) });
  });

  it('undo of a running campaign cancels it first and reverts only what it applied, after its targets in flight finished', async () => {
    const n = 40;
    t.sandbox.load(conductorFleet('r', n));
    t.sandbox.configure({ latencyMs: 20 });
    const id = 'running';
    await enqueueCampaign(
      {
        id,
        connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'),
        operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 },
        limits: [{ key: 'all', concurrency: 2 }],
        rollout: { steps: [{ count: 10 }] },
      },
      Array.from({ length: n }, (_, i) => ({ workflowId: `r-${i}` })),
      t.producer,
    );
    // Undo lands as the second step opens, with its first targets in flight.
    const sub = t.redis.duplicate();
    t.defer(() => sub.disconnect());
    const stepped = new Promise<void>((resolve) => {
      sub.on('message', (_channel: string, message: string) => {
        const e = JSON.parse(message) as { id?: string; step?: number };
        if (e.id === id && e.step === 1) resolve();
      });
    });
    await sub.subscribe(eventsChannel(t.prefix));
    await t.startWorker();
    await stepped;
    const undone = await undoCampaign(id, t.producer);
    expect(undone.cancelledOriginal).toBe(true);
    const original = await readStatus(t.redis, t.prefix, id);
    expect(original).toMatchObject({ state: 'cancelled', undoCampaign: undone.campaignId });
    // The undo was made after the original ended: every target of it has its outcome.
    expect(original!.finishedAt).toBeDefined();
    expect(original!.upgraded + original!.skipped).toBe(n);
    expect(original!.upgraded).toBeGreaterThan(0);
    expect(original!.skipped).toBe(original!.reasons.CANCELLED);
    expect(undone.total).toBe(original!.upgraded);
    expect(await waitForCompletion(t.prefix, undone.campaignId)).toMatchObject({ total: original!.upgraded, upgraded: original!.upgraded });
    // Back on version 1, every one of them: upgraded and reverted, or never touched.
    expect(t.sandbox.state().conductor!.executions!.map((e) => e.workflowVersion)).toEqual(Array(n).fill(1));
    const upgrades = t.sandbox.received!.filter((r) => r.method === 'POST');
    expect(upgrades).toHaveLength(2 * original!.upgraded);
  });

  it('rollout.onBreach "undo": a breached budget cancels the campaign and reverts what it changed', async () => {
    const n = 30;
    t.sandbox.load({
      tallyfy: {
        // Every third run may not be updated: 403, a permanent failure.
        runs: Array.from({ length: n }, (_, i) => ({ orgId: 'org', id: `b-${String(i).padStart(2, '0')}`, name: 'old', summary: '', tags: [], folders: [], forbidden: i % 3 === 2 })),
      },
    });
    const before = comparable(t.sandbox.state());
    const id = 'breach';
    await enqueueCampaign(
      {
        id,
        connection: connection('UPSHIFT_TEST_TALLYFY_KEY'),
        operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'new', tags: ['v2'] } },
        rollout: { steps: [50], maxFailureRatio: 0.1, minSamples: 6, onBreach: 'undo' },
        limits: [{ key: 'all', concurrency: 1 }],
      },
      Array.from({ length: n }, (_, i) => ({ runId: `b-${String(i).padStart(2, '0')}` })),
      t.producer,
    );
    await t.startWorker();
    const undoStatus = await waitForCompletion(t.prefix, `${id}-undo`);
    const original = await readStatus(t.redis, t.prefix, id);
    expect(original).toMatchObject({ state: 'cancelled', cancelReason: 'FAILURE_BUDGET_EXCEEDED', undoCampaign: `${id}-undo`, pausedReason: undefined });
    expect(original!.breach!.ratio).toBeGreaterThan(0.1);
    expect(original!.reasons.CANCELLED).toBeGreaterThan(0);
    expect(undoStatus).toMatchObject({ undoOf: id, total: original!.upgraded, upgraded: original!.upgraded, failed: 0 });
    // Only what the campaign changed was written back: the forbidden runs were never touched.
    expect(comparable(t.sandbox.state())).toEqual(before);
    expect(await t.redis.zcard(schedulerKeys(t.prefix).undoDue)).toBe(0);
  });

  it('a write that landed but whose answer was lost keeps the first pre-image: the retry is recorded upgraded, and the undo restores it', async () => {
    t.sandbox.load(fleet());
    const before = comparable(t.sandbox.state());
    // 30% of answers come after the call timeout: those writes landed, their runs are retried.
    t.sandbox.configure({ slowRate: 0.3, slowMs: 1500 });
    await t.startWorker();
    for (const c of CASES) {
      const id = `lost-${c.label.replace('.', '-')}`;
      await enqueueCampaign(
        { id, connection: { ...connection(c.key), timeoutMs: 300 }, operation: c.operation, retry: { attempts: 20, backoffMs: 10 } },
        c.targets,
        t.producer,
      );
      const st = await waitForCompletion(t.prefix, id);
      expect(st, JSON.stringify(await report(t.redis, t.prefix, id))).toMatchObject({ total: N, upgraded: N });
    }
    expect(t.sandbox.stats().faults.slow).toBeGreaterThan(0);
    t.sandbox.configure({ slowRate: 0 });
    for (const c of CASES) {
      const { campaignId } = await undoCampaign(`lost-${c.label.replace('.', '-')}`, t.producer);
      expect(await waitForCompletion(t.prefix, campaignId), campaignId).toMatchObject({ total: N, upgraded: N });
    }
    expect(comparable(t.sandbox.state())).toEqual(before);
    // Nothing kept in the deployment's slot once the outcomes are recorded: the records hold it.
    const left = await t.redis.hkeys(campaignKeys(t.prefix, 'lost-tallyfy-updateRun').attempts);
    expect(left.filter((k) => k.startsWith('u:'))).toEqual([]);
  });

  it('an undo campaign is a campaign like any other: its failed targets are retried with `retry`', async () => {
    t.sandbox.load(fleet());
    const before = comparable(t.sandbox.state());
    await t.startWorker();
    const id = 'undo-retry';
    await enqueueCampaign(
      { id, connection: connection('UPSHIFT_TEST_TALLYFY_KEY'), operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'x' } }, retry: { attempts: 1 } },
      Array.from({ length: N }, (_, i) => ({ runId: `run-${i}` })),
      t.producer,
    );
    await waitForCompletion(t.prefix, id);
    // Every call of the undo fails (5xx), and one attempt is all the campaign allows.
    t.sandbox.configure({ failRate: 1 });
    const { campaignId } = await undoCampaign(id, t.producer);
    expect(await waitForCompletion(t.prefix, campaignId)).toMatchObject({ total: N, failed: N });
    t.sandbox.configure({ failRate: 0 });
    expect(await retryCampaign(campaignId, t.producer)).toBe(N);
    expect(await waitForCompletion(t.prefix, campaignId)).toMatchObject({ total: N, upgraded: N, failed: 0 });
    expect(comparable(t.sandbox.state())).toEqual(before);
  });

  it('a write that may have landed before its target was cancelled is taken back too', async () => {
    const n = 4;
    t.sandbox.load(conductorFleet('l', n));
    const before = comparable(t.sandbox.state());
    const id = 'landed';
    await enqueueCampaign(
      { id, connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'), operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 } },
      Array.from({ length: n }, (_, i) => ({ workflowId: `l-${i}` })),
      t.producer,
    );
    // As a run leaves it that kept l-1's pre-image, sent its upgrade, and lost the answer: the
    // execution is on version 2 and the target waits for its retry.
    await t.scripts.keepUndo(id, 'l-1', JSON.stringify({ version: 1 }));
    t.sandbox.load({ conductor: { executions: [{ workflowId: 'l-1', workflowName: 'flow', workflowVersion: 2, status: 'RUNNING' }] } });
    await cancelCampaign(id, t.producer);
    const cancelled = await report(t.redis, t.prefix, id);
    expect(cancelled.map((l) => l.reason)).toEqual(Array(n).fill('CANCELLED'));

    const undone = await undoCampaign(id, t.producer);
    expect(undone.total).toBe(1);
    await t.startWorker();
    expect(await waitForCompletion(t.prefix, undone.campaignId)).toMatchObject({ total: 1, upgraded: 1 });
    expect(comparable(t.sandbox.state())).toEqual(before);
    expect((await t.redis.hkeys(campaignKeys(t.prefix, id).attempts)).filter((k) => k.startsWith('u:'))).toEqual([]);
  });

  it('a target a cancelled campaign gets back after its drain (the lease of a dead worker) is recorded, so the campaign ends', async () => {
    t.sandbox.load(fleet());
    const id = 'returned';
    await enqueueCampaign(
      { id, connection: connection('UPSHIFT_TEST_TALLYFY_KEY'), operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'x' } } },
      [1, 2, 3].map((i) => ({ runId: `run-${i}` })),
      t.producer,
    );
    // A worker (registered by hand, never running anything) takes one target and dies.
    await t.scripts.renew(60_000, 'gone-worker', 1, []);
    const { picks } = await t.scripts.dispatch(1, 60_000);
    expect(picks).toHaveLength(1);
    await cancelCampaign(id, t.producer);
    expect(await readStatus(t.redis, t.prefix, id)).toMatchObject({ state: 'cancelled', active: 1, skipped: 2, finishedAt: undefined });
    // Its lease runs out; the next dispatch step reclaims it.
    const ended = waitForCompletion(t.prefix, id);
    await t.redis.zadd(schedulerKeys(t.prefix).leases, 0, picks[0]!.holder);
    expect((await t.scripts.dispatch(1, 60_000)).reclaimed).toBe(1);
    expect(await ended).toMatchObject({ state: 'cancelled', active: 0, pending: 0, skipped: 3, reasons: { CANCELLED: 3 } });
  });
});
