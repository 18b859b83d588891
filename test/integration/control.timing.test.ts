import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import {
  cancelCampaign,
  enqueueCampaign,
  listCampaigns,
  pauseCampaign,
  promoteCampaign,
  resumeCampaign,
  retryCampaign,
} from '../../src/producer/index.js';
import { campaignKeys, InputError, loadScripts, parseMarker, readRecordJson, readStatus, streamReport, type ReportLine } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet } from '../support/fleet.js';
import { waitForCompletion, waitForState } from '../support/harness.js';

async function report(redis: Redis, prefix: string, id: string): Promise<ReportLine[]> {
  const out: ReportLine[] = [];
  for await (const line of streamReport(redis, prefix, id)) out.push(line);
  return out;
}

function sumsToTotal(s: { total: number; upgraded: number; skipped: number; failed: number; pending: number; active: number }): boolean {
  return s.upgraded + s.skipped + s.failed + s.pending + s.active === s.total;
}

describe('campaign control', () => {
  const t = setupDeployment({ sandbox: { record: true, latencyMs: 20 }, credentials: true });
  const work = (concurrency = 10) => t.startWorker({ concurrency });
  const spec = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 5000 },
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
    ...extra,
  });
  const opts = () => t.producer;
  const arrivalsAfter = (sinceMs: number) => t.sandbox.received!.filter((r) => r.at > sinceMs).length;

  it('pause under load: nothing new starts within 1 s; resume finishes with exact counters', async () => {
    const fleet = alloyFleet(600);
    t.sandbox.load(fleet.fixtures);
    await work(10);
    await enqueueCampaign(spec('pausable'), fleet.targets, opts());
    await t.sandbox.requestsReached(50);
    expect(await pauseCampaign('pausable', opts())).toBe('paused');
    const pausedAt = Date.now();
    await waitForState(t.prefix, 'pausable', ['paused']);
    // In-flight calls (sent before the pause) end within a latency; nothing starts after.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(arrivalsAfter(pausedAt + 50)).toBe(0);
    const paused = (await readStatus(t.redis, t.prefix, 'pausable'))!;
    expect(paused).toMatchObject({ state: 'paused', pausedReason: 'OPERATOR', active: 0 });
    expect(paused.pending).toBeGreaterThan(0);
    expect(sumsToTotal(paused)).toBe(true);

    expect(await resumeCampaign('pausable', opts())).toBe('running');
    const done = await waitForCompletion(t.prefix, 'pausable');
    expect(done).toMatchObject({ state: 'completed', upgraded: 600, failed: 0, pending: 0, active: 0 });
    expect(Object.values(t.sandbox.stats().appliedByTarget).every((n) => n === 1)).toBe(true);
  });

  it('cancel during a run: every target not started ends skipped/CANCELLED, counters add up', async () => {
    const fleet = alloyFleet(500);
    t.sandbox.load(fleet.fixtures);
    await work(5);
    await enqueueCampaign(spec('doomed', { retry: { attempts: 3, backoffMs: 60_000 } }), fleet.targets, opts());
    await t.sandbox.requestsReached(20);
    const ended = waitForCompletion(t.prefix, 'doomed');
    const drained = await cancelCampaign('doomed', opts());
    const s = await ended;
    expect(s.state).toBe('cancelled');
    expect(s.finishedAt).toBeDefined();
    expect(s).toMatchObject({ total: 500, pending: 0, active: 0, failed: 0 });
    expect(s.upgraded + s.skipped).toBe(500);
    expect(s.skipped).toBeGreaterThanOrEqual(drained);
    const lines = await report(t.redis, t.prefix, 'doomed');
    expect(lines).toHaveLength(500);
    const cancelled = lines.filter((l) => l.reason === 'CANCELLED');
    expect(cancelled.length).toBe(s.skipped);
    expect(s.reasons).toEqual({ CANCELLED: s.skipped });
    // A cancelled target was never called.
    const applied = t.sandbox.stats().appliedByTarget;
    expect(cancelled.every((l) => applied[`alloy:wf-1:${l.target}`] === undefined)).toBe(true);
    await expect(resumeCampaign('doomed', opts())).rejects.toThrow(/cannot resume campaign "doomed": it is cancelled/);
  });

  it('retry runs failed targets again, by reason, replacing their outcome with exact counters', async () => {
    const fleet = alloyFleet(40);
    t.sandbox.load(fleet.fixtures);
    t.sandbox.load({ alloy: { installs: [{ workflowId: 'wf-1', userId: 'locked', version: 1, forbidden: true }] } });
    t.sandbox.configure({ failRate: 1, retryAfterS: 0 });
    await work(10);
    await enqueueCampaign(spec('again', { retry: { attempts: 1, backoffMs: 1 } }), [...fleet.targets, { userId: 'locked' }], opts());
    const first = await waitForCompletion(t.prefix, 'again');
    // The forbidden install also meets the injected 5xx first: everything failed transiently.
    expect(first).toMatchObject({ state: 'completed', failed: 41, upgraded: 0 });
    expect(first.reasons).toEqual({ RETRIES_EXHAUSTED: 41 });

    t.sandbox.configure({ failRate: 0 });
    // user-0's first record as stored (`<seq>|<JSON>`), whether or not archived yet.
    const marker = parseMarker((await t.redis.hget(campaignKeys(t.prefix, 'again').outcomes, 'user-0'))!);
    const [firstJson] = await readRecordJson(t.redis, t.prefix, 'again', [['user-0', marker]]);
    expect(firstJson).toMatch(/"RETRIES_EXHAUSTED"/);
    const firstRecord = `${marker.seq}|${firstJson}`;
    // The retry clears `finishedAt` at once, so waiting afterwards cannot see the old end.
    expect(await retryCampaign('again', { ...opts(), reason: 'RETRIES_EXHAUSTED' })).toBe(41);
    const second = await waitForCompletion(t.prefix, 'again');
    expect(second).toMatchObject({ state: 'completed', total: 41, upgraded: 40, failed: 1, pending: 0, active: 0 });
    // Counts by reason move with the outcomes they count.
    expect(second.reasons).toEqual({ FORBIDDEN: 1 });
    const lines = await report(t.redis, t.prefix, 'again');
    expect(lines).toHaveLength(41);
    expect(lines.find((l) => l.target === 'locked')).toMatchObject({ outcome: 'failed', reason: 'FORBIDDEN', attempts: 1 });
    expect(lines.filter((l) => l.outcome === 'upgraded').every((l) => l.attempts === 1)).toBe(true);
    // The old record, copied late by a slow worker, cannot come back over the new one (archived
    // by the time the worker has closed).
    await t.closeWorkers();
    const scripts = loadScripts(t.redis, t.prefix);
    expect(await scripts.archive('again', ['user-0', firstRecord])).toBe(0);
    expect((await report(t.redis, t.prefix, 'again')).find((l) => l.target === 'user-0')).toMatchObject({ outcome: 'upgraded', attempts: 1 });

    // Only the reason asked for is retried; an unknown reason is an input error.
    expect(await retryCampaign('again', { ...opts(), reason: 'NOT_FOUND' })).toBe(0);
    await expect(retryCampaign('again', { ...opts(), reason: 'NOPE' })).rejects.toBeInstanceOf(InputError);
  });

  it('lists campaigns, and a finished campaign keeps its data for the retention only', async () => {
    const fleet = alloyFleet(3);
    t.sandbox.load(fleet.fixtures);
    await work(3);
    await enqueueCampaign(spec('short'), fleet.targets, { ...opts(), retentionMs: 60_000 });
    await waitForCompletion(t.prefix, 'short');
    await pauseCampaign('short', opts()).catch((err: Error) => expect(err.message).toMatch(/it is completed/));
    const list = await listCampaigns(opts());
    expect(list.map((c) => c.id)).toEqual(['short']);
    expect(list[0]).toMatchObject({ state: 'completed', total: 3, upgraded: 3 });
    const ttl = await t.redis.pttl(campaignKeys(t.prefix, 'short').status);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await t.redis.pttl(campaignKeys(t.prefix, 'short').outcomes)).toBeGreaterThan(50_000);
    // The records reach the campaign's own key in the worker's next archive batch; a closing
    // worker finishes its batch first.
    await t.closeWorkers();
    expect(await t.redis.pttl(campaignKeys(t.prefix, 'short').records)).toBeGreaterThan(50_000);
    await expect(pauseCampaign('nope', opts())).rejects.toThrow(/no campaign "nope"/);
  });

  it('staged rollout, manual gate: each step finishes before the next; cancel while gated', async () => {
    const fleet = alloyFleet(100);
    t.sandbox.load(fleet.fixtures);
    await work(5);
    const gated = waitForState(t.prefix, 'staged', ['gated']);
    await enqueueCampaign(spec('staged', { rollout: { steps: [10, 50], gate: 'manual' } }), fleet.targets, opts());
    const first = await gated;
    expect(first).toMatchObject({ state: 'gated', rolloutStep: 0, rolloutSteps: 3, rolloutLimit: 10, upgraded: 10, pending: 90, active: 0 });
    expect(t.sandbox.stats().requests).toBe(10); // not one call past the step

    // Paused at the gate and resumed: back at the gate, not running with nothing to admit.
    expect(await pauseCampaign('staged', opts())).toBe('paused');
    expect(await resumeCampaign('staged', opts())).toBe('gated');

    const gatedAgain = waitForState(t.prefix, 'staged', ['gated']);
    expect(await promoteCampaign('staged', opts())).toBe('running');
    expect(await gatedAgain).toMatchObject({ rolloutStep: 1, rolloutLimit: 50, upgraded: 50, pending: 50 });
    expect(t.sandbox.stats().requests).toBe(50);

    const ended = waitForCompletion(t.prefix, 'staged');
    await cancelCampaign('staged', opts());
    const s = await ended;
    expect(s).toMatchObject({ state: 'cancelled', upgraded: 50, skipped: 50, pending: 0, active: 0, total: 100 });
    expect(t.sandbox.stats().requests).toBe(50);
  });

  it('staged rollout, auto gate: steps open by themselves while the budget holds', async () => {
    const fleet = alloyFleet(60);
    t.sandbox.load(fleet.fixtures);
    await work(5);
    await enqueueCampaign(spec('auto', { rollout: { steps: [{ count: 5 }, 50], maxFailureRatio: 0.2, minSamples: 5 } }), fleet.targets, opts());
    const s = await waitForCompletion(t.prefix, 'auto');
    expect(s).toMatchObject({ state: 'completed', upgraded: 60, rolloutStep: 2, rolloutSteps: 3 });
  });

  it('a failure budget breach pauses the campaign mid-step, with the figures', async () => {
    const fleet = alloyFleet(200);
    t.sandbox.load(fleet.fixtures);
    // Every third install refuses the change (403): a permanent failure.
    t.sandbox.load({ alloy: { installs: fleet.targets.filter((_, i) => i % 3 === 0).map((u) => ({ workflowId: 'wf-1', userId: u.userId, version: 1, forbidden: true })) } });
    await work(5);
    const paused = waitForState(t.prefix, 'budget', ['paused']);
    await enqueueCampaign(spec('budget', { rollout: { steps: [60, 100], maxFailureRatio: 0.1, minSamples: 20 } }), fleet.targets, opts());
    const s = await paused;
    expect(s.pausedReason).toBe('FAILURE_BUDGET_EXCEEDED');
    expect(s.breach!.samples).toBeGreaterThanOrEqual(20);
    expect(s.breach!.ratio).toBeGreaterThan(0.1);
    expect(s.breach!.failed / s.breach!.samples).toBeCloseTo(s.breach!.ratio, 3);
    // Mid-step: far fewer than the step's 120 targets ran.
    expect(s.upgraded + s.failed).toBeLessThan(60);
    expect(sumsToTotal(s)).toBe(true);
  });
});
