import { describe, expect, it } from 'vitest';
import { enqueueCampaign, undoCampaign } from '../../src/producer/index.js';
import type { SandboxFixtures } from '../../src/sandbox/index.js';
import { streamReport, type ReportLine } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import type { WorkerProcess } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';
import { recordFigures } from './figures.js';

/**
 * The undo scenario of the reliability suite: a Tallyfy campaign upgraded under the chaos run's
 * platform faults with a worker SIGKILLed mid-campaign, then its undo campaign, during which
 * another worker is SIGKILLed. Tallyfy, because both its upgrade and its revert are a read and a
 * plain write: the one operation whose kept data and whose revert a cut-off call can disturb.
 *
 * Checked: every target the original upgraded is in the undo campaign and recorded there
 * exactly once (upgraded + skipped + failed = total, counters = report); every `upgraded` one
 * is `REVERTED` and holds its pre-image on the platform; no target is written back twice
 * beyond the calls the killed worker had in flight; nobody edited a run, so none is
 * `CHANGED_SINCE_UPGRADE`; a target skipped as `ALREADY_CURRENT` holds its pre-image too (a
 * revert cut off after its write landed): an upgrade retried after its write landed unanswered
 * keeps the first run's pre-image (`ApplyContext.keep`), not what the retry reads.
 */
const TARGETS = 500;
const CONCURRENCY = 25;
const TIMEOUT_MS = 1000;
/** 56 s at load 5 on two cores; the bound is for a much worse machine (each wait gets most of it). */
const LOADED_TIMEOUT_MS = 600_000;
/** Platform requests of a phase after which its worker is killed: early, so most of it runs after. */
const KILL_AFTER_REQUESTS = 300;

/** Fields a platform sets on every write itself: a revert cannot (and need not) put them back. */
const VOLATILE = new Set(['createTime', 'updateTime', 'last_updated', 'checksum']);
const comparable = (value: unknown): string => JSON.stringify(value, (k, v: unknown) => (VOLATILE.has(k) ? undefined : v));

const runId = (i: number) => `run-${i}`;
const writeKey = (id: string) => `tallyfy:org:${id}`;

function fleet(): SandboxFixtures {
  return {
    tallyfy: {
      runs: Array.from({ length: TARGETS }, (_, i) => ({ orgId: 'org', id: runId(i), name: `onboarding ${i}`, summary: `customer ${i}`, owner_id: 7, tags: ['v1'], folders: [] })),
    },
  };
}

async function report(t: { redis: Parameters<typeof streamReport>[0]; prefix: string }, id: string): Promise<ReportLine[]> {
  const out: ReportLine[] = [];
  for await (const line of streamReport(t.redis, t.prefix, id)) out.push(line);
  return out;
}

describe('chaos: undo under kills and platform faults', () => {
  const t = setupDeployment({
    credentials: true,
    // The chaos run's faults (chaos.test.ts), but 1% 429 instead of 5%: this campaign has one
    // connection, which each Retry-After pauses for a second (the chaos run spreads them over 40).
    sandbox: { record: true, latencyMs: 5, failRate: 0.1, throttleRate: 0.01, retryAfterS: 1, resetRate: 0.02, slowRate: 0.02, slowMs: 3 * TIMEOUT_MS, seed: 1313 },
  });
  /** The worker processes alive, oldest first (the deployment kills what is left at its close). */
  let live: WorkerProcess[] = [];
  // Short leases and locks, so a killed worker's targets come back within seconds.
  const worker = async () => {
    live.push(await t.spawnWorker(['--concurrency', String(CONCURRENCY), '--lease-ms', '2000', '--lock-duration-ms', '1000', '--stalled-interval-ms', '500']));
  };

  /** Once the sandbox has received `n` requests in all, SIGKILLs the oldest live worker and starts a replacement. */
  async function killAt(n: number): Promise<void> {
    await t.sandbox.requestsReached(n);
    const victim = live.shift()!;
    victim.proc.kill('SIGKILL');
    expect((await victim.exited).signal).toBe('SIGKILL');
    await worker();
  }

  it('an undo campaign with a worker SIGKILLed mid-undo: each upgraded target once, reverted ones back to their pre-image', async () => {
    t.sandbox.load(fleet());
    const preImage = new Map(t.sandbox.state().tallyfy!.runs!.map((r) => [r.id, comparable(r)]));
    const started = Date.now();

    // The original, with a worker killed in the middle of it.
    const id = 'chaos-undo';
    await enqueueCampaign(
      {
        id,
        connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_TALLYFY_KEY', timeoutMs: TIMEOUT_MS },
        operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'migrated', tags: ['v2'] } },
        retry: { attempts: 8, backoffMs: 50 },
      },
      Array.from({ length: TARGETS }, (_, i) => ({ runId: runId(i) })),
      t.producer,
    );
    live = [];
    await worker();
    await worker();
    await killAt(KILL_AFTER_REQUESTS);
    const original = await waitForCompletion(t.prefix, id, LOADED_TIMEOUT_MS / 2);
    expect(original).toMatchObject({ state: 'completed', total: TARGETS, pending: 0, active: 0 });
    const originalLines = await report(t, id);
    const upgradedTargets = originalLines.filter((l) => l.outcome === 'upgraded').map((l) => l.target);
    expect(upgradedTargets).toHaveLength(original.upgraded);

    // The undo, with one of the two live workers killed in the middle of it.
    const writesBefore = t.sandbox.stats().appliedByTarget;
    const requestsBefore = t.sandbox.stats().requests;
    const receivedBefore = t.sandbox.received!.length;
    const undone = await undoCampaign(id, t.producer);
    expect(undone).toMatchObject({ campaignId: `${id}-undo`, total: original.upgraded, created: true, cancelledOriginal: false });
    await killAt(requestsBefore + KILL_AFTER_REQUESTS);
    const status = await waitForCompletion(t.prefix, undone.campaignId, LOADED_TIMEOUT_MS / 2 - 30_000);

    // Every upgraded target of the original, recorded once in the undo campaign.
    expect(status).toMatchObject({ state: 'completed', total: original.upgraded, pending: 0, active: 0, undoOf: id });
    expect(status.upgraded + status.skipped + status.failed).toBe(status.total);
    // The kill cut the undo off mid-way: the killed worker's targets came back to the others.
    expect(status.reclaimed).toBeGreaterThan(0);
    const lines = await report(t, undone.campaignId);
    expect(lines.map((l) => l.target).sort()).toEqual([...upgradedTargets].sort());
    const count = (o: string) => lines.filter((l) => l.outcome === o).length;
    expect({ upgraded: count('upgraded'), skipped: count('skipped'), failed: count('failed') }).toEqual({ upgraded: status.upgraded, skipped: status.skipped, failed: status.failed });
    const reasons: Record<string, number> = {};
    for (const l of lines) reasons[`${l.outcome}/${l.reason}`] = (reasons[`${l.outcome}/${l.reason}`] ?? 0) + 1;
    expect(lines.filter((l) => l.outcome === 'upgraded' && l.reason !== 'REVERTED')).toEqual([]);
    // Nobody edited a run behind Upshift's back.
    expect(lines.filter((l) => l.reason === 'CHANGED_SINCE_UPGRADE')).toEqual([]);

    // Every reverted run is its pre-image again.
    const now = new Map(t.sandbox.state().tallyfy!.runs!.map((r) => [r.id, comparable(r)]));
    const reverted = lines.filter((l) => l.outcome === 'upgraded').map((l) => l.target);
    expect(reverted.filter((r) => now.get(r) !== preImage.get(r))).toEqual([]);

    // Written back at most twice, and twice only for calls the kill cut off. The revert reads the
    // run before it writes, so a retry after a write that landed unanswered (a kill, or a `slow`
    // answer past the call timeout) finds it back and writes nothing; the bound allows both.
    const writesAfter = t.sandbox.stats().appliedByTarget;
    const undoWrites = new Map(upgradedTargets.map((r) => [r, (writesAfter[writeKey(r)] ?? 0) - (writesBefore[writeKey(r)] ?? 0)]));
    const twice = [...undoWrites].filter(([, n]) => n > 1);
    const slowUndoWrites = t.sandbox.received!.slice(receivedBefore).filter((r) => r.method === 'PUT' && r.fault === 'slow').length;
    expect(twice.every(([, n]) => n === 2)).toBe(true);
    expect(twice.length).toBeLessThanOrEqual(CONCURRENCY + slowUndoWrites);
    // A reverted run was written back by this undo; one skipped as already back was too, by a cut-off call, or not at all.
    for (const r of reverted) expect(undoWrites.get(r)).toBeGreaterThanOrEqual(1);

    // Skipped as already back: reverted by a call the kill (or a slow answer) cut off. Back at
    // its pre-image too, also when its upgrade was retried after a write that landed unanswered:
    // the retry kept the first run's pre-image, not the new values it read.
    const alreadyBack = lines.filter((l) => l.reason === 'ALREADY_CURRENT').map((l) => l.target);
    const attemptsOf = new Map(originalLines.map((l) => [l.target, l.attempts]));
    const notBack = alreadyBack.filter((r) => now.get(r) !== preImage.get(r));
    expect(notBack).toEqual([]);
    recordFigures('undo', {
      operation: 'tallyfy.updateRun',
      targets: TARGETS,
      elapsedS: Math.round((Date.now() - started) / 1000),
      kills: 2,
      originalUpgraded: original.upgraded,
      originalFailed: original.failed,
      undoTotal: status.total,
      undoOutcomes: reasons,
      undoReclaimed: status.reclaimed,
      revertedAtPreImage: reverted.length,
      alreadyBackAtPreImage: alreadyBack.filter((r) => now.get(r) === preImage.get(r)).length,
      alreadyBackNotAtPreImage: notBack.length,
      alreadyBackNotAtPreImageRetriedInOriginal: notBack.filter((r) => (attemptsOf.get(r) ?? 1) > 1).length,
      writtenBackTwice: twice.length,
      slowUndoWrites,
      faultsInjected: t.sandbox.stats().faults,
    });
  }, LOADED_TIMEOUT_MS);
});
