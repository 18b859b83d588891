import { describe, expect, it } from 'vitest';
import { enqueueCampaign, promoteCampaign, retryCampaign } from '../../src/producer/index.js';
import { InputError, readStatus } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { runCli } from '../support/fleet.js';
import { waitForCompletion, waitForState } from '../support/harness.js';

interface Run {
  readonly id: string;
  readonly tier: string;
  readonly tenant: string;
  readonly forbidden?: boolean;
}

/** `n` runs of a tier, spread over three tenants (so over several groups of a per-tenant limit). */
function runs(tier: string, n: number, forbidden: (i: number) => boolean = () => false): Run[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${tier}-${String(i).padStart(2, '0')}`, tier, tenant: `t${i % 3}`, forbidden: forbidden(i) }));
}

describe('cohort steps', () => {
  const t = setupDeployment({ sandbox: { record: true, latencyMs: 5 }, credentials: true });

  const spec = (id: string, rollout: Record<string, unknown>) => ({
    id,
    connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_TALLYFY_KEY', timeoutMs: 5000 },
    operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'new' } },
    limits: [{ key: 'tenant-${target.tenant}', concurrency: 2 }],
    rollout,
  });

  /** Loads the runs in the sandbox and enqueues them (shuffled, so arrival order is no help) with `rollout`. */
  async function start(id: string, fleet: readonly Run[], rollout: Record<string, unknown>): Promise<void> {
    t.sandbox.load({ tallyfy: { runs: fleet.map((r) => ({ orgId: 'org', id: r.id, name: 'old', summary: '', tags: [], folders: [], forbidden: r.forbidden === true })) } });
    const shuffled = [...fleet].sort((a, b) => (a.tenant + a.id.split('-')[1]).localeCompare(b.tenant + b.id.split('-')[1]));
    await enqueueCampaign(spec(id, rollout), shuffled.map((r) => ({ runId: r.id, tier: r.tier, tenant: r.tenant })), t.producer);
  }

  /** The runs written, in the order their writes reached the sandbox. */
  const written = (): string[] =>
    t.sandbox.received!.filter((r) => r.method === 'PUT').map((r) => /\/runs\/([^/?]+)/.exec(r.path)![1]!);

  it('internal tenants first, then the free tier, then everyone: every write of a step precedes every write of the next', async () => {
    const fleet = [...runs('paid', 12), ...runs('internal', 6), ...runs('free', 9), ...runs('staff', 3)];
    await start('tiers', fleet, { steps: [{ where: { tier: ['internal', 'staff'] } }, { where: { tier: 'free' } }] });
    await t.startWorker({ concurrency: 6 });
    const s = await waitForCompletion(t.prefix, 'tiers');
    expect(s).toMatchObject({ state: 'completed', total: 30, upgraded: 30, rolloutSteps: 3 });
    expect(s.steps).toEqual([
      { cohort: 'tier=internal|staff', targets: 9, upgraded: 9, skipped: 0, failed: 0, failureRatio: 0 },
      { cohort: 'tier=free', targets: 9, upgraded: 9, skipped: 0, failed: 0, failureRatio: 0 },
      { cohort: 'the rest', targets: 12, upgraded: 12, skipped: 0, failed: 0, failureRatio: 0 },
    ]);
    const cli = await runCli(['status', 'tiers'], t.env());
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('step 1/3 tier=internal|staff: 9 targets, upgraded 9, skipped 0, failed 0 (failure ratio 0)');
    expect(cli.stdout).toContain('step 3/3 the rest: 12 targets, upgraded 12');
    const stepOf = (run: string) => (/^(internal|staff)/.test(run) ? 0 : run.startsWith('free') ? 1 : 2);
    const order = written().map(stepOf);
    expect(order).toHaveLength(30);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('percent steps mixed with cohorts count within the targets no cohort takes', async () => {
    const fleet = [...runs('paid', 10), ...runs('internal', 4), ...runs('free', 6)];
    await start('mixed', fleet, { steps: [{ where: { tier: 'internal' } }, 50, { where: { tier: 'free' } }] });
    await t.startWorker({ concurrency: 4 });
    const s = await waitForCompletion(t.prefix, 'mixed');
    expect(s).toMatchObject({ state: 'completed', total: 20, upgraded: 20, rolloutSteps: 4 });
    expect(s.steps!.map((step) => [step.cohort, step.targets, step.upgraded])).toEqual([
      ['tier=internal', 4, 4],
      ['50% of the rest', 5, 5],
      ['tier=free', 6, 6],
      ['the rest', 5, 5],
    ]);
    const tiers = written().map((run) => run.split('-')[0]);
    expect(tiers).toEqual([...Array(4).fill('internal'), ...Array(5).fill('paid'), ...Array(6).fill('free'), ...Array(5).fill('paid')]);
  });

  it("a cohort whose failures breach its own budget pauses before the next cohort starts, though the campaign's ratio holds", async () => {
    // Campaign-wide, 5 failures of 30 finished is 0.17, under the budget; the free tier alone is 0.5.
    const fleet = [...runs('internal', 20), ...runs('free', 10, (i) => i % 2 === 0), ...runs('paid', 10)];
    await start('budget', fleet, { steps: [{ where: { tier: 'internal' } }, { where: { tier: 'free' } }], maxFailureRatio: 0.3, minSamples: 5 });
    const paused = waitForState(t.prefix, 'budget', ['paused']);
    await t.startWorker({ concurrency: 4 });
    const s = await paused;
    expect(s).toMatchObject({ pausedReason: 'FAILURE_BUDGET_EXCEEDED', rolloutStep: 1, breach: { step: 1 } });
    expect(s.breach!.ratio).toBeGreaterThan(0.3);
    expect(s.steps![0]).toMatchObject({ upgraded: 20, failed: 0 });
    expect(s.steps![1]!.failureRatio).toBeGreaterThan(0.3);
    // The workers finish what they hold; nothing of the next step ever starts.
    await t.closeWorkers();
    expect(written().filter((run) => run.startsWith('paid'))).toEqual([]);
    expect((await readStatus(t.redis, t.prefix, 'budget'))!.steps![2]).toMatchObject({ upgraded: 0, failed: 0 });
  });

  it('gate "manual" holds between cohorts', async () => {
    const fleet = [...runs('paid', 6), ...runs('internal', 3), ...runs('free', 6)];
    await start('gated', fleet, { steps: [{ where: { tier: 'internal' } }, { where: { tier: 'free' } }], gate: 'manual' });
    let gated = waitForState(t.prefix, 'gated', ['gated']);
    await t.startWorker({ concurrency: 4 });
    expect(await gated).toMatchObject({ rolloutStep: 0, upgraded: 3, rolloutLimit: 3 });
    expect(written().sort()).toEqual(['internal-00', 'internal-01', 'internal-02']);
    // No retry during a cohort step: a retried target of a later step would stall it.
    await expect(retryCampaign('gated', t.producer)).rejects.toMatchObject({ code: 'CAMPAIGN_STATE_CONFLICT', message: expect.stringMatching(/cohort step/) });

    gated = waitForState(t.prefix, 'gated', ['gated']);
    expect(await promoteCampaign('gated', t.producer)).toBe('running');
    expect(await gated).toMatchObject({ rolloutStep: 1, upgraded: 9, rolloutLimit: 9 });
    expect(written().slice(3).every((run) => run.startsWith('free'))).toBe(true);

    const ended = waitForCompletion(t.prefix, 'gated');
    expect(await promoteCampaign('gated', t.producer)).toBe('running');
    expect(await ended).toMatchObject({ state: 'completed', upgraded: 15 });
    expect(written().slice(9).every((run) => run.startsWith('paid'))).toBe(true);
  });

  it('refuses a where that is empty or holds something other than strings and numbers, naming the field', async () => {
    for (const where of [{}, { tier: { nested: 1 } }, { tier: [] }, { tier: [true] }]) {
      const err = await enqueueCampaign(spec('bad', { steps: [{ where }] }), [{ runId: 'r-1', tier: 'free' }], t.producer).catch((e: unknown) => e);
      expect(err, JSON.stringify(where)).toBeInstanceOf(InputError);
      expect((err as InputError).field, JSON.stringify(where)).toMatch(/^rollout\.steps\[0\]/);
    }
    const tooMany = Array.from({ length: 21 }, (_, i) => ({ where: { tier: `t${i}` } }));
    const err = await enqueueCampaign(spec('bad', { steps: tooMany }), [{ runId: 'r-1' }], t.producer).catch((e: unknown) => e);
    expect((err as InputError).field).toBe('rollout.steps');
  });
});
