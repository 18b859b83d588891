import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { streamReport, type ReportLine } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet, nectedGraph } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

describe('dry run', () => {
  const t = setupDeployment({ sandbox: { record: true }, worker: { concurrency: 8 }, credentials: true });
  const connection = (ref: string) => ({ baseUrl: t.sandbox.url, credentialRef: ref, timeoutMs: 2000 });
  const run = async (spec: Record<string, unknown>, targets: unknown[]) => {
    const { campaignId } = await enqueueCampaign({ ...spec, dryRun: true }, targets, t.producer);
    const status = await waitForCompletion(t.prefix, campaignId);
    const lines = new Map<string, ReportLine>();
    for await (const line of streamReport(t.redis, t.prefix, campaignId)) lines.set(line.target, line);
    return { status, lines };
  };
  const writes = () => t.sandbox.received!.filter((r) => r.method !== 'GET');

  it('reads, decides and records what would happen, leaving every platform untouched', async () => {
    const fleet = alloyFleet(5);
    t.sandbox.load(fleet.fixtures);
    t.sandbox.load({
      conductor: {
        definitions: [1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })),
        executions: [
          { workflowId: 'e-1', workflowName: 'flow', workflowVersion: 1, status: 'RUNNING' },
          { workflowId: 'done', workflowName: 'flow', workflowVersion: 1, status: 'COMPLETED' },
          { workflowId: 'other', workflowName: 'billing', workflowVersion: 1, status: 'RUNNING' },
        ],
      },
      nected: {
        workflows: [
          { entityId: 'n-1', branch: 'main', graph: nectedGraph('one') },
          { entityId: 'n-2', branch: 'main', graph: { ...nectedGraph('two'), settings: { auditIO: true } } },
        ],
      },
    });
    const before = t.sandbox.state();

    const alloy = await run(
      { id: 'dry-alloy', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } },
      fleet.targets,
    );
    expect(alloy.status).toMatchObject({ state: 'completed', dryRun: true, wouldUpgrade: 5, upgraded: 0, pending: 0 });
    expect(alloy.lines.get('user-0')).toMatchObject({ outcome: 'would-upgrade', reason: 'UPGRADED' });

    const cond = await run(
      { id: 'dry-cond', connection: connection('UPSHIFT_TEST_CONDUCTOR_KEY'), operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 } },
      [{ workflowId: 'e-1' }, { workflowId: 'done' }, { workflowId: 'other' }],
    );
    expect(cond.status).toMatchObject({ wouldUpgrade: 1, wouldSkip: 1, wouldFail: 1, upgraded: 0, skipped: 0, failed: 0 });
    expect(cond.lines.get('done')).toMatchObject({ outcome: 'would-skip', reason: 'NOT_RUNNING' });
    expect(cond.lines.get('other')).toMatchObject({ outcome: 'would-fail', reason: 'WRONG_WORKFLOW' });

    const nected = await run(
      {
        id: 'dry-nected',
        connection: connection('UPSHIFT_TEST_NECTED_KEY'),
        operation: { type: 'nected.updateWorkflow', branch: 'main', patch: [{ op: 'replace', path: '/settings/auditIO', value: true }] },
      },
      [{ entityId: 'n-1' }, { entityId: 'n-2' }, { entityId: 'missing' }],
    );
    expect(nected.lines.get('n-1')).toMatchObject({ outcome: 'would-upgrade' });
    expect(nected.lines.get('n-2')).toMatchObject({ outcome: 'would-skip', reason: 'ALREADY_CURRENT' });
    expect(nected.lines.get('missing')).toMatchObject({ outcome: 'would-fail', reason: 'NOT_FOUND' });

    expect(writes()).toEqual([]);
    expect(t.sandbox.state()).toEqual(before);
    expect(t.sandbox.stats().appliedByTarget).toEqual({});
  });
});
