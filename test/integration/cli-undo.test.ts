import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { readStatus } from '../../src/shared/index.js';
import type { SandboxFixtures } from '../../src/sandbox/index.js';
import { setupDeployment } from '../support/deployment.js';
import { runCli } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

const N = 3;

const runs = (): SandboxFixtures => ({
  tallyfy: { runs: Array.from({ length: N }, (_, i) => ({ orgId: 'org', id: `run-${i}`, name: `run ${i}`, summary: `s${i}`, owner_id: 7, tags: ['a'], folders: [] })) },
});

describe('upshift undo', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 5 }, credentials: true, workerDefaults: { concurrency: 4 } });

  const names = () => (t.sandbox.state().tallyfy?.runs ?? []).map((r) => r.name).sort();

  /** A campaign over the sandbox's runs, run to its end by an in-process worker. */
  async function upgraded(id: string): Promise<void> {
    t.sandbox.load(runs());
    await t.startWorker();
    await enqueueCampaign(
      {
        id,
        connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_TALLYFY_KEY', timeoutMs: 5000 },
        operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'migrated' } },
      },
      Array.from({ length: N }, (_, i) => ({ runId: `run-${i}` })),
      t.producer,
    );
    expect(await waitForCompletion(t.prefix, id)).toMatchObject({ upgraded: N });
  }

  it('makes the undo campaign and says so; --json prints the result; again makes nothing new', async () => {
    await upgraded('mig');
    const env = t.env();

    const dry = await runCli(['undo', 'mig', '--dry-run', '--json'], env);
    expect([dry.code, dry.stderr]).toEqual([0, '']);
    expect(JSON.parse(dry.stdout)).toEqual({ campaignId: 'mig-undo-dry', undoOf: 'mig', total: N, created: true, cancelledOriginal: false });
    expect(await waitForCompletion(t.prefix, 'mig-undo-dry')).toMatchObject({ wouldUpgrade: N });
    expect(names()).toEqual(Array(N).fill('migrated'));

    const real = await runCli(['undo', 'mig'], env);
    expect([real.code, real.stdout]).toEqual([0, `undo campaign mig-undo of mig created: ${N} targets\n`]);
    expect(await waitForCompletion(t.prefix, 'mig-undo')).toMatchObject({ upgraded: N, failed: 0 });
    expect(names()).toEqual(Array.from({ length: N }, (_, i) => `run ${i}`));
    expect((await readStatus(t.redis, t.prefix, 'mig'))?.undoCampaign).toBe('mig-undo');

    const status = await runCli(['status', 'mig'], env);
    expect(status.stdout).toContain('undone by campaign mig-undo');

    const again = await runCli(['undo', 'mig', '--json', '--wait-ms', '1000'], env);
    expect(JSON.parse(again.stdout)).toEqual({ campaignId: 'mig-undo', undoOf: 'mig', total: N, created: false, cancelledOriginal: false });
    expect((await runCli(['undo', 'mig'], env)).stdout).toBe(`undo campaign mig-undo of mig exists already (${N} targets); nothing new enqueued\n`);
  });

  it('exits 2 for an unknown campaign, an undo campaign, bad flags and no registry; --help has examples', async () => {
    await upgraded('c1');
    const env = t.env();
    // The first real undo makes the campaign the next case refuses to undo.
    expect((await runCli(['undo', 'c1', '--json'], env)).code).toBe(0);

    const unknown = await runCli(['undo', 'nope'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^upshift undo: .*no campaign "nope"; list campaigns with "upshift list"/);
    const ofUndo = await runCli(['undo', 'c1-undo'], env);
    expect(ofUndo.code).toBe(2);
    expect(ofUndo.stderr).toContain('cannot be undone: it is an undo campaign itself');
    expect((await runCli(['undo'], env)).code).toBe(2);
    expect((await runCli(['undo', 'c1', '--wait-ms', 'soon'], env)).stderr).toContain('--wait-ms');
    const noRegistry = await runCli(['undo', 'c1'], { ...env, UPSHIFT_CONNECTIONS: '' });
    expect([noRegistry.code, noRegistry.stderr]).toEqual([2, expect.stringContaining('UPSHIFT_CONNECTIONS')]);
    // None of these made anything.
    expect(await readStatus(t.redis, t.prefix, 'c1-undo-undo')).toBeNull();

    const help = await runCli(['undo', '--help'], env);
    expect([help.code, help.stdout]).toEqual([0, expect.stringMatching(/^upshift undo <id> \[--dry-run\] \[--json\] \[--wait-ms N\][\s\S]*Examples:/)]);
    expect((await runCli(['--help'], env)).stdout).toMatch(/^ {2}undo <id> /m);
  });
});
