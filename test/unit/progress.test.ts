import { describe, expect, it } from 'vitest';
import type { CampaignStatus } from '../../src/shared/index.js';
import {
  addSample,
  barWidth,
  changeKey,
  doneCount,
  etaMs,
  formatDuration,
  formatRate,
  isFinal,
  lifetimeRate,
  percent,
  progressOf,
  rateFromSamples,
  redrawPrefix,
  renderBar,
  renderFrame,
  renderPlainLine,
  renderSummary,
} from '../../src/cli/watch.js';
import { stepLine } from '../../src/cli/watch-render.js';

function status(over: Partial<CampaignStatus> = {}): CampaignStatus {
  return {
    id: 'onboarding-v3',
    state: 'running',
    operation: 'alloy.upgradeWorkflow',
    name: '',
    total: 1000,
    upgraded: 0,
    skipped: 0,
    failed: 0,
    wouldUpgrade: 0,
    wouldSkip: 0,
    wouldFail: 0,
    dryRun: false,
    pending: 1000,
    active: 0,
    retries: 0,
    conflicts: 0,
    reclaimed: 0,
    retryAfterWaits: 0,
    retryAfterWaitMs: 0,
    pausedReason: undefined,
    cancelReason: undefined,
    undoCampaign: undefined,
    undoOf: undefined,
    undoError: undefined,
    rolloutStep: undefined,
    rolloutSteps: undefined,
    rolloutLimit: undefined,
    breach: undefined,
    createdAt: undefined,
    updatedAt: undefined,
    finishedAt: undefined,
    reasons: {},
    ...over,
  };
}

// Printable width of a string: escape sequences take no cells.
const visible = (s: string) => s.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');

describe('rate and ETA', () => {
  it('measures the rate between the oldest and newest sample in the window', () => {
    let samples = addSample([], { atMs: 0, done: 0 }, 10_000);
    expect(rateFromSamples(samples)).toBeUndefined();
    samples = addSample(samples, { atMs: 2000, done: 50 }, 10_000);
    samples = addSample(samples, { atMs: 4000, done: 100 }, 10_000);
    expect(rateFromSamples(samples)).toBe(25);
  });

  it('forgets samples older than the window but keeps the one just before it', () => {
    let samples = [0, 5000, 9000, 12_000, 16_000].reduce(
      (acc, atMs, i) => addSample(acc, { atMs, done: i * 100 }, 10_000),
      [] as ReturnType<typeof addSample>,
    );
    // Window ends at 16000 - 10000 = 6000: 5000 is the newest sample at or before it.
    expect(samples.map((s) => s.atMs)).toEqual([5000, 9000, 12_000, 16_000]);
    expect(rateFromSamples(samples)).toBe(((400 - 100) / 11_000) * 1000);
    // Readings further apart than the window still give a rate.
    samples = addSample(addSample([], { atMs: 0, done: 0 }, 1000), { atMs: 5000, done: 10 }, 1000);
    expect(rateFromSamples(samples)).toBe(2);
  });

  it('reads a stalled campaign as 0/s and never as negative', () => {
    const flat = [addSample([], { atMs: 0, done: 7 }, 10_000)[0]!, { atMs: 1000, done: 7 }];
    expect(rateFromSamples(flat)).toBe(0);
    expect(rateFromSamples([{ atMs: 0, done: 9 }, { atMs: 1000, done: 7 }])).toBe(0);
    expect(rateFromSamples([{ atMs: 1000, done: 0 }, { atMs: 1000, done: 5 }])).toBeUndefined();
  });

  it('computes the ETA from what is left; unknown without a rate', () => {
    const s = status({ total: 1000, upgraded: 400, skipped: 50, failed: 50 });
    expect(etaMs(s, 25)).toBe(20_000);
    expect(etaMs(s, 0)).toBeUndefined();
    expect(etaMs(s, undefined)).toBeUndefined();
    expect(etaMs(status({ total: 10, upgraded: 10 }), undefined)).toBe(0);
    expect(etaMs(status({ dryRun: true, total: 10, wouldUpgrade: 5 }), 1)).toBe(5000);
  });

  it('falls back to the lifetime average from the status hash (Redis clock) before two samples exist', () => {
    const s = status({ total: 1000, upgraded: 200, createdAt: 1_000_000, updatedAt: 1_010_000 });
    expect(lifetimeRate(s)).toBe(20);
    expect(progressOf(s, [{ atMs: 0, done: 200 }])).toEqual({ ratePerS: 20, etaMs: 40_000 });
    expect(progressOf(s, [{ atMs: 0, done: 100 }, { atMs: 1000, done: 200 }])).toEqual({ ratePerS: 100, etaMs: 8000 });
    expect(lifetimeRate(status({ createdAt: 5, updatedAt: 5, upgraded: 3 }))).toBeUndefined();
    expect(lifetimeRate(status({ createdAt: 5, updatedAt: 50 }))).toBeUndefined();
  });

  it('formats durations and rates', () => {
    expect(formatDuration(undefined)).toBe('?');
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(41_200)).toBe('42s');
    expect(formatDuration(185_000)).toBe('3m05s');
    expect(formatDuration(2 * 3_600_000 + 7 * 60_000)).toBe('2h07m');
    expect(formatDuration(26 * 3_600_000)).toBe('1d02h');
    expect(formatRate(undefined)).toBe('?');
    expect(formatRate(3.456)).toBe('3.5');
    expect(formatRate(123.6)).toBe('124');
  });
});

describe('progress bar', () => {
  it('is exactly the width asked, whatever the counts', () => {
    for (const width of [10, 23, 50]) {
      for (const [up, skip, fail] of [[0, 0, 0], [1, 1, 1], [333, 333, 333], [999, 0, 1], [1000, 0, 0], [0, 0, 1000]]) {
        const bar = renderBar(status({ upgraded: up, skipped: skip, failed: fail }), width);
        expect([...bar].length, `${up}/${skip}/${fail} at ${width}`).toBe(width);
        expect([...visible(renderBar(status({ upgraded: up, skipped: skip, failed: fail }), width, true))].length).toBe(width);
      }
    }
  });

  it('splits the cells by outcome and fills up only when every target is done', () => {
    expect(renderBar(status({ total: 10, upgraded: 5, skipped: 2, failed: 1 }), 10)).toBe('█████▒▒x░░');
    expect(renderBar(status({ total: 1000, upgraded: 999 }), 10)).toBe('█████████░');
    expect(renderBar(status({ total: 1000, upgraded: 1000 }), 10)).toBe('██████████');
    expect(renderBar(status({ dryRun: true, total: 4, wouldUpgrade: 2, wouldFail: 2 }), 8)).toBe('████xxxx');
    expect(renderBar(status({ total: 0 }), 5)).toBe('░░░░░');
    expect(renderBar(status({ total: 0, state: 'completed', finishedAt: 1 }), 5)).toBe('█████');
  });

  it('fits the terminal: wider terminals get wider bars, at most 50 cells, none below 10', () => {
    expect(barWidth(80, 40)).toBe(37);
    expect(barWidth(undefined, 40)).toBe(37);
    expect(barWidth(200, 40)).toBe(50);
    expect(barWidth(53, 40)).toBe(10);
    expect(barWidth(52, 40)).toBe(0);
  });
});

describe('terminal frame', () => {
  const s = status({
    name: 'Move onboarding users to v3',
    total: 1000,
    upgraded: 400,
    skipped: 80,
    failed: 20,
    pending: 490,
    active: 10,
    reasons: { ALREADY_CURRENT: 80, SERVER_ERROR: 5, RETRIES_EXHAUSTED: 15 },
  });

  it('shows state, done/total, percentage, counts, rate, ETA and reasons by count', () => {
    const lines = renderFrame(s, { ratePerS: 25, etaMs: 20_000 }, { columns: 100, color: false });
    expect(lines[0]).toBe('onboarding-v3 (Move onboarding users to v3) · running · alloy.upgradeWorkflow');
    expect(lines[1]).toMatch(/^\[[█▒x░]+\]  500\/1000   50%  25 targets\/s  ETA 20s$/);
    expect(lines[2]).toBe('upgraded 400  skipped 80  failed 20  · pending 490  active 10');
    expect(lines[3]).toBe('reasons: ALREADY_CURRENT 80, RETRIES_EXHAUSTED 15, SERVER_ERROR 5');
    expect(lines).toHaveLength(4);
  });

  it('never draws a line wider than the terminal (a wrapped line would break the redraw)', () => {
    for (const columns of [40, 60, 80, 120]) {
      const lines = renderFrame(s, { ratePerS: 1234.5, etaMs: 123_456_789 }, { columns, color: true });
      for (const line of lines) expect([...visible(line)].length, `${columns}: ${line}`).toBeLessThan(columns);
      expect(lines[1], 'the counts stay when the bar does not fit').toContain('500/1000');
    }
  });

  it('lists would-* counts for a dry run, and what a paused or gated campaign needs', () => {
    const dry = renderFrame(status({ dryRun: true, wouldUpgrade: 3, wouldSkip: 2, wouldFail: 1 }), { ratePerS: undefined, etaMs: undefined }, { columns: 120, color: false });
    expect(dry[0]).toContain('running (dry run)');
    expect(dry[1]).toMatch(/6\/1000 +0%  \? targets\/s  ETA \?$/);
    expect(dry[2]).toMatch(/^would upgrade 3  would skip 2  would fail 1/);

    const paused = renderFrame(
      status({ state: 'paused', pausedReason: 'FAILURE_BUDGET_EXCEEDED', breach: { failed: 6, samples: 20, ratio: 0.3 } }),
      { ratePerS: 0, etaMs: undefined },
      { columns: 160, color: false },
    );
    expect(paused.at(-1)).toBe('paused (failure budget exceeded: 6 failed of 20 (30.0%)); continue with: upshift resume onboarding-v3');
    const gated = renderFrame(status({ state: 'gated', rolloutStep: 1, rolloutSteps: 4 }), { ratePerS: 0, etaMs: undefined }, { columns: 160, color: false });
    expect(gated[0]).toContain('gated · step 2/4');
    expect(gated.at(-1)).toBe('waiting at a manual gate; open the next step with: upshift promote onboarding-v3');
  });

  it("shows each rollout step's cohort, counts and failure ratio, the current one marked", () => {
    const steps = [
      { cohort: 'tier=internal|staff', targets: 9, upgraded: 8, skipped: 0, failed: 1, failureRatio: 0.1111 },
      { cohort: 'tier=free', targets: 30, upgraded: 10, skipped: 2, failed: 5, failureRatio: 0.3333 },
      { cohort: 'the rest', targets: 961, upgraded: 0, skipped: 0, failed: 0, failureRatio: 0 },
    ];
    const running = renderFrame(status({ rolloutStep: 1, rolloutSteps: 3, steps }), { ratePerS: 1, etaMs: 1 }, { columns: 200, color: false });
    expect(running.slice(3, 6)).toEqual([
      '  step 1/3 tier=internal|staff: 9 targets, upgraded 8, skipped 0, failed 1 (failure ratio 0.1111)',
      '> step 2/3 tier=free: 30 targets, upgraded 10, skipped 2, failed 5 (failure ratio 0.3333)',
      '  step 3/3 the rest: 961 targets, upgraded 0, skipped 0, failed 0 (failure ratio 0)',
    ]);
    expect(running).toHaveLength(6);
    // A cohort label quotes the spec: escaped like every text from Redis; cut to the terminal.
    const hostile = renderFrame(status({ rolloutStep: 0, steps: [{ ...steps[0]!, cohort: 'tier=\u001b[2Jx' }] }), { ratePerS: 1, etaMs: 1 }, { columns: 40, color: false });
    expect(hostile[3]).not.toMatch(/\u001b/);
    expect([...hostile[3]!].length).toBeLessThan(40);
    const ended = renderFrame(status({ state: 'completed', finishedAt: 9, rolloutStep: 2, rolloutSteps: 3, steps }), { ratePerS: 1, etaMs: 0 }, { columns: 200, color: false });
    expect(ended.filter((l) => l.startsWith('>'))).toEqual([]);
  });

  it('caps the steps listed: the first few, the current one, "+N more"; the same mark as upshift status', () => {
    const steps = Array.from({ length: 12 }, (_, i) => ({ cohort: `${i + 1}%`, targets: 10, upgraded: i < 7 ? 10 : 0, skipped: 0, failed: 0, failureRatio: 0 }));
    const lines = renderFrame(status({ rolloutStep: 7, rolloutSteps: 12, steps }), { ratePerS: 1, etaMs: 1 }, { columns: 200, color: false });
    expect(lines.slice(3).filter((l) => l.includes('step'))).toEqual([
      '  step 1/12 1%: 10 targets, upgraded 10, skipped 0, failed 0 (failure ratio 0)',
      '  step 2/12 2%: 10 targets, upgraded 10, skipped 0, failed 0 (failure ratio 0)',
      '  step 3/12 3%: 10 targets, upgraded 10, skipped 0, failed 0 (failure ratio 0)',
      '> step 8/12 8%: 10 targets, upgraded 0, skipped 0, failed 0 (failure ratio 0)',
      '  +8 more steps (upshift status onboarding-v3)',
    ]);
    // Ended: no mark, in the frame and in `upshift status` (stepLine) alike.
    const ended = status({ state: 'cancelled', finishedAt: 9, rolloutStep: 7, rolloutSteps: 12, steps });
    expect(stepLine(ended, 7)[0]).toBe(' ');
    expect(stepLine(status({ state: 'paused', rolloutStep: 7, steps }), 7)[0]).toBe('>');
    expect(renderFrame(ended, { ratePerS: 1, etaMs: 0 }, { columns: 200, color: false }).filter((l) => l.startsWith('>'))).toEqual([]);
  });

  it('caps the reasons listed', () => {
    const many = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`R${i}`, 10 - i]));
    const lines = renderFrame(status({ reasons: many }), { ratePerS: 1, etaMs: 1 }, { columns: 200, color: false, maxReasons: 3 });
    expect(lines.at(-1)).toBe('reasons: R0 10, R1 9, R2 8, +6 more');
  });

  it('redraws by moving up over the previous frame and clearing it', () => {
    expect(redrawPrefix(0)).toBe('');
    expect(redrawPrefix(4)).toBe('\u001b[4F\u001b[0J');
  });
});

describe('plain lines (not a terminal)', () => {
  it('are key=value fields with no escape codes', () => {
    const line = renderPlainLine(
      status({ upgraded: 500, skipped: 10, failed: 2, pending: 480, active: 8, reasons: { SERVER_ERROR: 2, ALREADY_CURRENT: 10 } }),
      { ratePerS: 41.2, etaMs: 11_650 },
    );
    expect(line).toBe(
      'onboarding-v3 running 512/1000 51% upgraded=500 skipped=10 failed=2 pending=480 active=8 rate=41/s eta=12s reasons=ALREADY_CURRENT:10,SERVER_ERROR:2',
    );
    expect(line).not.toMatch(/\u001b/);
  });

  it('name would-* counts in a dry run, the rollout step, a pause reason, and eta 0s once final', () => {
    const dry = renderPlainLine(status({ dryRun: true, total: 4, wouldUpgrade: 3, wouldFail: 1, pending: 0, state: 'completed', finishedAt: 9 }), {
      ratePerS: 2.5,
      etaMs: 0,
    });
    expect(dry).toBe('onboarding-v3 completed 4/4 100% would-upgrade=3 would-skip=0 would-fail=1 pending=0 active=0 rate=2.5/s eta=0s');
    const paused = renderPlainLine(status({ state: 'paused', pausedReason: 'OPERATOR', rolloutStep: 0, rolloutSteps: 3 }), { ratePerS: 0, etaMs: undefined });
    expect(paused).toMatch(/ rate=0\.0\/s eta=\? step=1\/3 paused=OPERATOR$/);
  });

  it('change only when counts or state change, not with the rate', () => {
    const a = status({ upgraded: 1, pending: 999 });
    expect(changeKey(a)).toBe(changeKey({ ...a, updatedAt: 99 }));
    expect(changeKey(a)).not.toBe(changeKey({ ...a, upgraded: 2 }));
    expect(changeKey(a)).not.toBe(changeKey({ ...a, state: 'paused' }));
    expect(changeKey(a)).not.toBe(changeKey({ ...a, reasons: { X: 1 } }));
  });
});

describe('status figures', () => {
  it('counts done, percent and final states', () => {
    expect(doneCount(status({ upgraded: 1, skipped: 2, failed: 3, wouldUpgrade: 4, wouldSkip: 5, wouldFail: 6 }))).toBe(21);
    expect(percent(status({ total: 3, upgraded: 2 }))).toBe(66);
    expect(percent(status({ total: 0 }))).toBe(0);
    expect(percent(status({ total: 0, state: 'completed' }))).toBe(100);
    expect(isFinal(status({ state: 'running' }))).toBe(false);
    expect(isFinal(status({ state: 'paused' }))).toBe(false);
    expect(isFinal(status({ state: 'cancelled' }))).toBe(true);
    expect(isFinal(status({ state: 'completed' }))).toBe(true);
  });

  it('summarises the end with the time taken and where to find failures', () => {
    expect(renderSummary(status({ state: 'completed', total: 10, upgraded: 8, failed: 2, createdAt: 0, finishedAt: 65_000 }))).toBe(
      'campaign onboarding-v3 completed in 1m05s: upgraded 8, skipped 0, failed 2; failures: upshift report onboarding-v3 --outcome failed',
    );
    expect(renderSummary(status({ state: 'cancelled', total: 10, skipped: 7, upgraded: 1, active: 2 }))).toBe(
      'campaign onboarding-v3 cancelled: upgraded 1, skipped 7, failed 0; 2 in flight still finish',
    );
  });
});
