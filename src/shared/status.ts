import type { RedisClient } from './redis.js';
import { campaignKeys } from './keys.js';

/** The status hash, typed. Counters are numbers; absent timestamps are undefined. */
export interface CampaignStatus {
  readonly id: string;
  readonly state: string;
  readonly operation: string;
  readonly name: string;
  readonly total: number;
  readonly upgraded: number;
  readonly skipped: number;
  readonly failed: number;
  /** Dry run: what would have happened. */
  readonly wouldUpgrade: number;
  readonly wouldSkip: number;
  readonly wouldFail: number;
  readonly dryRun: boolean;
  /** Targets waiting to start (in their groups, or parked for a retry or a Retry-After). */
  readonly pending: number;
  /** Targets dispatched and not finished (holding their slots). */
  readonly active: number;
  readonly retries: number;
  readonly conflicts: number;
  /** Leases that expired (a worker died) and whose targets were requeued. */
  readonly reclaimed: number;
  /** Retry-After waits sat out, and their total length. */
  readonly retryAfterWaits: number;
  readonly retryAfterWaitMs: number;
  /** Why a `paused` campaign paused: `OPERATOR` or `FAILURE_BUDGET_EXCEEDED`. */
  readonly pausedReason: string | undefined;
  /** Staged rollout: the current step (0-based) of `rolloutSteps`, and how many targets it admits in all. */
  readonly rolloutStep: number | undefined;
  readonly rolloutSteps: number | undefined;
  readonly rolloutLimit: number | undefined;
  /** Staged rollout: each step as it runs (steps that take no target are left out), with its own counts. */
  readonly steps?: readonly RolloutStepStatus[];
  /** Why a `cancelled` campaign was cancelled by Upshift itself: `FAILURE_BUDGET_EXCEEDED` (rollout.onBreach "undo"). */
  readonly cancelReason: string | undefined;
  /** The undo campaign of this one (`upshift undo`), when there is one. */
  readonly undoCampaign: string | undefined;
  /** The campaign this undo campaign takes back. */
  readonly undoOf: string | undefined;
  /** Why the undo campaign a breach asked for (rollout.onBreach "undo") could not be made. */
  readonly undoError: string | undefined;
  /** A failure budget breach: failed targets, finished samples and their ratio when it paused (or was cancelled). */
  readonly breach: { readonly failed: number; readonly samples: number; readonly ratio: number; readonly step?: number } | undefined;
  readonly createdAt: number | undefined;
  readonly updatedAt: number | undefined;
  readonly finishedAt: number | undefined;
  /** Targets not upgraded, by reason code (skipped, failed and dry-run outcomes). */
  readonly reasons: Readonly<Record<string, number>>;
  /** What the connections registry changed in the spec (a limit clipped to its ceiling); absent when nothing. */
  readonly warnings?: readonly string[];
  /**
   * Maintenance windows (spec `schedule`): targets waiting for their zone's window to open, and
   * when the next window opens (ms, on the window clock: Redis's, unless a test offsets it).
   * Absent until a target of the campaign first waited for a window.
   */
  readonly waitingForWindow?: number;
  readonly nextWindowAt?: number;
  /**
   * Its webhook deliveries counted (absent when it has none): `changes` grows with every change
   * to one (recorded, an attempt started or ended), so a reader fetches the list only then.
   */
  readonly notifications?: NotificationCounts;
}

export interface NotificationCounts {
  readonly total: number;
  readonly delivered: number;
  readonly failed: number;
  readonly pending: number;
  readonly changes: number;
}

/** One step of a staged rollout in the status. */
export interface RolloutStepStatus {
  /** What it takes: `tier=internal|staff` (a cohort), `10%`, `50 targets`, `10% of the rest`, `the rest`. */
  readonly cohort: string;
  readonly targets: number;
  readonly upgraded: number;
  readonly skipped: number;
  readonly failed: number;
  /** failed / (upgraded + failed), 0 before any; the step's own failure budget judges this. */
  readonly failureRatio: number;
}

function rolloutSteps(h: Record<string, string>): RolloutStepStatus[] | undefined {
  if (h.rolloutPlan === undefined) return undefined;
  const plan = JSON.parse(h.rolloutPlan) as { label: string; targets: number }[];
  return plan.map(({ label, targets }, n) => {
    // A dry run's outcomes count as what they would have been.
    const count = (outcome: string, would: string): number => num(h[`step:${n}:${outcome}`]) + num(h[`step:${n}:${would}`]);
    const upgraded = count('upgraded', 'would-upgrade');
    const failed = count('failed', 'would-fail');
    const finished = upgraded + failed;
    return { cohort: label, targets, upgraded, skipped: count('skipped', 'would-skip'), failed, failureRatio: finished === 0 ? 0 : Number((failed / finished).toFixed(4)) };
  });
}

const num = (v: string | undefined): number => (v === undefined ? 0 : Number(v));
const time = (v: string | undefined): number | undefined => (v === undefined || v === '' ? undefined : Number(v));

/** Reads a campaign's status hash; `null` when there is no such campaign. */
export async function readStatus(redis: RedisClient, prefix: string, id: string): Promise<CampaignStatus | null> {
  const h = await redis.hgetall(campaignKeys(prefix, id).status);
  if (Object.keys(h).length === 0) return null;
  return {
    id,
    state: h.state ?? 'unknown',
    operation: h.operation ?? '',
    name: h.name ?? '',
    total: num(h.total),
    upgraded: num(h.upgraded),
    skipped: num(h.skipped),
    failed: num(h.failed),
    wouldUpgrade: num(h['would-upgrade']),
    wouldSkip: num(h['would-skip']),
    wouldFail: num(h['would-fail']),
    dryRun: h.dryRun === '1',
    pending: num(h.pending),
    active: num(h.active),
    retries: num(h.retries),
    conflicts: num(h.conflicts),
    reclaimed: num(h.reclaimed),
    retryAfterWaits: num(h.retryAfterWaits),
    retryAfterWaitMs: num(h.retryAfterWaitMs),
    pausedReason: h.pausedReason || undefined,
    cancelReason: h.cancelReason || undefined,
    undoCampaign: h.undoCampaign || undefined,
    undoOf: h.undoOf || undefined,
    undoError: h.undoError || undefined,
    rolloutStep: time(h.rolloutStep),
    rolloutSteps: time(h.rolloutSteps),
    rolloutLimit: time(h.rolloutLimit),
    ...(h.rolloutPlan === undefined ? {} : { steps: rolloutSteps(h) }),
    breach:
      h.breachRatio === undefined
        ? undefined
        : { failed: num(h.breachFailed), samples: num(h.breachSamples), ratio: Number(h.breachRatio), ...(h.breachStep === undefined ? {} : { step: Number(h.breachStep) }) },
    createdAt: time(h.createdAt),
    updatedAt: time(h.updatedAt),
    finishedAt: time(h.finishedAt),
    reasons: Object.fromEntries(
      Object.entries(h)
        .filter(([k, v]) => k.startsWith('r:') && Number(v) > 0)
        .map(([k, v]) => [k.slice(2), Number(v)]),
    ),
    ...(h.warnings ? { warnings: JSON.parse(h.warnings) as string[] } : {}),
    ...(num(h.notifyTotal) > 0 ? { notifications: notificationCounts(h) } : {}),
    ...(h.waitingForWindow === undefined ? {} : { waitingForWindow: num(h.waitingForWindow) }),
    ...(h.nextWindowAt === undefined ? {} : { nextWindowAt: Number(h.nextWindowAt) }),
  };
}

function notificationCounts(h: Record<string, string>): NotificationCounts {
  const [total, delivered, failed] = [num(h.notifyTotal), num(h.notifyDelivered), num(h.notifyFailed)];
  return { total, delivered, failed, pending: Math.max(0, total - delivered - failed), changes: num(h.notifyChanges) };
}
