/**
 * The figures of `upshift status --watch`: how far a campaign is, how fast it goes, when it may
 * end. Pure (a status and a few measured samples in, numbers out), so they are unit-tested
 * without Redis or a terminal.
 */
import type { CampaignStatus } from '../shared/index.js';
import { escapeControlChars } from '../shared/text.js';

/**
 * How often the status hash is read while watching, and the span the rate is measured over.
 * The rate window is long enough to smooth the bursts of a rate-limited key, short enough that a
 * pause shows up as a falling rate within seconds.
 */
export const WATCH_DEFAULTS = Object.freeze({ intervalMs: 1000, minIntervalMs: 100, rateWindowMs: 10_000 });

/** One reading of the finished-target count, on the watcher's own monotonic clock. */
export interface Sample {
  readonly atMs: number;
  readonly done: number;
}

/** What the renderers need besides the status: measured, not stored in Redis. */
export interface Progress {
  /** Targets finished per second, or undefined while there is nothing to measure. */
  readonly ratePerS: number | undefined;
  /** Time left at that rate; undefined when it cannot be told (no rate, or a rate of 0). */
  readonly etaMs: number | undefined;
}

/**
 * The status with every text field from Redis escaped (`\u001b` for ESC, and so on): whoever
 * could write the hash must not be able to drive the watching terminal.
 */
export function printableStatus(s: CampaignStatus): CampaignStatus {
  const e = escapeControlChars;
  return {
    ...s,
    id: e(s.id),
    state: e(s.state),
    operation: e(s.operation),
    name: e(s.name),
    pausedReason: s.pausedReason === undefined ? undefined : e(s.pausedReason),
    cancelReason: s.cancelReason === undefined ? undefined : e(s.cancelReason),
    undoCampaign: s.undoCampaign === undefined ? undefined : e(s.undoCampaign),
    undoOf: s.undoOf === undefined ? undefined : e(s.undoOf),
    undoError: s.undoError === undefined ? undefined : e(s.undoError),
    // A cohort's label quotes the spec's field names and values.
    ...(s.steps === undefined ? {} : { steps: s.steps.map((step) => ({ ...step, cohort: e(step.cohort) })) }),
    reasons: Object.fromEntries(Object.entries(s.reasons).map(([code, n]) => [e(code), n])),
  };
}

/** Targets with an outcome, real or dry-run. */
export function doneCount(s: CampaignStatus): number {
  return s.upgraded + s.skipped + s.failed + s.wouldUpgrade + s.wouldSkip + s.wouldFail;
}

/**
 * The campaign will not change by itself any more. `cancelled` counts as soon as it is set:
 * no new target starts, and the in-flight ones settle whether anyone watches or not.
 */
export function isFinal(s: CampaignStatus): boolean {
  return s.finishedAt !== undefined || s.state === 'completed' || s.state === 'cancelled';
}

/** Floor-rounded percentage; 100 only once everything is done (an empty, finished campaign too). */
export function percent(s: CampaignStatus): number {
  if (s.total === 0) return isFinal(s) ? 100 : 0;
  return Math.min(100, Math.floor((doneCount(s) / s.total) * 100));
}

/**
 * Adds a sample and drops those older than the window, keeping the newest one before the window
 * so the measured span covers the whole window even when readings are further apart than it.
 */
export function addSample(samples: readonly Sample[], sample: Sample, windowMs: number): Sample[] {
  const all = [...samples, sample];
  const cutoff = sample.atMs - windowMs;
  let first = 0;
  while (first + 1 < all.length && all[first + 1]!.atMs <= cutoff) first++;
  return all.slice(first);
}

/** Finished targets per second between the oldest and newest sample; undefined without a span. */
export function rateFromSamples(samples: readonly Sample[]): number | undefined {
  if (samples.length < 2) return undefined;
  const oldest = samples[0]!;
  const newest = samples[samples.length - 1]!;
  const spanMs = newest.atMs - oldest.atMs;
  if (spanMs <= 0) return undefined;
  return (Math.max(0, newest.done - oldest.done) / spanMs) * 1000;
}

/**
 * The campaign's average rate so far, from the status hash alone (both times are Redis's clock,
 * so the watcher's clock does not matter): the estimate shown before two samples exist.
 */
export function lifetimeRate(s: CampaignStatus): number | undefined {
  const end = s.finishedAt ?? s.updatedAt;
  if (s.createdAt === undefined || end === undefined || end <= s.createdAt) return undefined;
  const done = doneCount(s);
  return done === 0 ? undefined : (done / (end - s.createdAt)) * 1000;
}

export function etaMs(s: CampaignStatus, ratePerS: number | undefined): number | undefined {
  const remaining = Math.max(0, s.total - doneCount(s));
  if (remaining === 0) return 0;
  if (ratePerS === undefined || ratePerS <= 0) return undefined;
  return (remaining / ratePerS) * 1000;
}

/** The figures for one frame: the windowed rate when measured, else the campaign's average. */
export function progressOf(s: CampaignStatus, samples: readonly Sample[]): Progress {
  const ratePerS = rateFromSamples(samples) ?? lifetimeRate(s);
  return { ratePerS, etaMs: etaMs(s, ratePerS) };
}

/** `42s`, `3m05s`, `2h07m`, `1d02h`; `?` when unknown. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '?';
  const s = Math.ceil(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** One decimal below 10/s (slow campaigns are where the figure matters), whole numbers above. */
export function formatRate(ratePerS: number | undefined): string {
  if (ratePerS === undefined) return '?';
  return ratePerS < 10 ? ratePerS.toFixed(1) : String(Math.round(ratePerS));
}
