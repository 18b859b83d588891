import {
  classifyError,
  UpshiftError,
  type CallSample,
  DRY_RUN_OUTCOME,
  jobOfPick,
  scrubError,
  type ClaimResult,
  type DispatchResult,
  type Logger,
  type Outcome,
  type OutcomeRecord,
  type ReasonCode,
  type Scripts,
  type Target,
  type TargetJob,
  type AbortSignalLike,
} from '../shared/index.js';
import type { ApplyResult } from '../shared/operations/types.js';
import type { Archiver } from './archiver.js';
import type { Campaign } from './campaigns.js';
import type { Dispatcher } from './dispatcher.js';
import { GivenBack } from './pauses.js';
import type { Finished, Finisher } from './finisher.js';
import type { LeaseKeeper } from './leases.js';
import type { TargetRun } from './metrics/index.js';
import { decide, type RetryLimits } from './retry-policy.js';

/**
 * Carrying out the end of an attempt, in one script call each: `finish` (outcome recorded and
 * slots freed together, and the next pick claimed for this worker), `retryLater` (slots freed
 * during the backoff) or `throttle` (Retry-After: the connection pauses, the attempt is not used
 * up). What happens to a failure is retry-policy.ts's decision; this file only records it.
 */
export interface SettleDeps {
  readonly scripts: Scripts;
  readonly leases: Pick<LeaseKeeper, 'newToken'>;
  readonly log: Logger;
  readonly limits: RetryLimits & { readonly maxErrorChars: number; readonly leaseMs: number };
  /** Where campaign completion and Retry-After pauses are announced. */
  readonly channel: string;
  /** Looks for runnable targets (a run ended and its slots may have freed). */
  readonly dispatcher: Pick<Dispatcher, 'trigger' | 'deliver'>;
  /** Records run ends in groups (finisher.ts): `finish` for every run that ended meanwhile. */
  readonly finisher: Pick<Finisher, 'finish'>;
  /** Takes each new outcome record out of the deployment's slot (archiver.ts). */
  readonly archiver: Pick<Archiver, 'add'>;
  /** False once the worker is closing: a run then hands its next target to BullMQ. */
  readonly continuing: () => boolean;
}

/** One claimed run of a target. */
export interface Attempt {
  readonly job: TargetJob;
  readonly campaign: Campaign;
  readonly target: Target;
  readonly targetKey: string;
  readonly token: string;
  readonly claim: Extract<ClaimResult, { kind: 'claimed' }>;
  /** Aborted when the lease could not be renewed. */
  readonly signal: AbortSignalLike;
  readonly run: TargetRun;
}

/** How the operation ended: a result, or what it threw. */
export type AttemptEnd = ({ readonly result: ApplyResult } | { readonly error: unknown }) & {
  /** Stale-checksum rounds the operation went through. */
  readonly conflicts: number;
  /** Credentials read, kept out of stored errors. */
  readonly secrets: readonly string[];
  /**
   * The pre-image kept in `:attempts` before a write (this run's, or an earlier run's whose write
   * may have landed): `finish` drops it there, and a record without `undo` of its own (a failure,
   * a skip after a write that may have landed) carries it, so that an undo can take that back too.
   */
  readonly kept: unknown;
  /** The slowest platform call the attempt made that the platform answered (not a 429 nor a 5xx), ms; absent when none was. */
  readonly slowestCallMs?: number;
  /** The slowest platform call the attempt sent, whatever came of it, ms; absent when it sent none. */
  readonly sentCallMs?: number;
};

/** A target this worker runs next, and its claim when `finish` made it. */
export interface Next {
  readonly job: TargetJob;
  readonly claimed?: Claimed;
}

export interface Claimed {
  readonly token: string;
  readonly claim: ClaimResult;
  /** When the call that claimed it was sent: the lease runs from no earlier than this. */
  readonly sentAt: number;
}

type Finish = (outcome: Outcome, reason: ReasonCode, error: string | null, undo?: unknown, overload?: boolean) => Promise<Next | undefined>;

/** Records how `a` ended; returns the target `finish` picked for this worker to run next. */
export async function settle(deps: SettleDeps, a: Attempt, end: AttemptEnd): Promise<Next | undefined> {
  let finished = false;
  const finish: Finish = async (outcome, reason, error, undo, overload = false) => {
    const { step, nextToken } = await recordOutcome(deps, a, end, outcome, reason, error, undo, overload);
    finished = true;
    return handOn(step, nextToken);
  };
  try {
    if ('result' in end) return await finish(end.result.outcome, end.result.reason, a.claim.lastError, end.result.undo);
    if (a.signal.aborted) {
      a.run.leaseLost();
      return undefined; // the lease is gone: the target was requeued; record nothing
    }
    // Given back at the send gate (processor.ts): already in its group again; record nothing.
    if (end.error instanceof GivenBack) {
      if (end.error.how === 'lost') a.run.leaseLost();
      else a.run.gaveBack();
      return undefined;
    }
    return await settleFailure(deps, a, end, finish);
  } finally {
    // Slots freed (or lost) without `finish`, whose dispatch step would have used them.
    if (!finished) deps.dispatcher.trigger();
  }
}

async function settleFailure(deps: SettleDeps, a: Attempt, end: AttemptEnd & { readonly error: unknown }, finish: Finish): Promise<Next | undefined> {
  const { holder, campaignId } = a.job;
  const c = classifyError(end.error);
  const d = decide(c, { attempt: a.claim.attemptsMade + 1, retryAfterWaits: a.claim.retryAfterWaits }, a.campaign.spec.retry, deps.limits);
  if (d.kind === 'fail') return finish('failed', d.reason, `${c.code}: ${c.message}${d.note ? ` (${d.note})` : ''}`, undefined, isOverload(end.error));
  const error = scrubError(`${c.code}: ${c.message}`, end.secrets, deps.limits.maxErrorChars);
  const call = callSample(a, end, isOverload(end.error));
  if (d.kind === 'throttle') {
    const until = await deps.scripts.throttle(holder, a.token, a.targetKey, d.waitMs, error, deps.channel, end.conflicts, call);
    a.run.throttled(d.waitMs, until);
    deps.log.info({ campaignId, holder, waitMs: d.waitMs, until }, 'Retry-After: connection paused');
  } else {
    a.run.retried(c.code, await deps.scripts.retryLater(holder, a.token, a.targetKey, d.backoffMs, error, end.conflicts, call));
  }
  return undefined;
}

async function recordOutcome(deps: SettleDeps, a: Attempt, end: AttemptEnd, real: Outcome, reason: ReasonCode, error: string | null, undo: unknown, overload: boolean) {
  const { holder, campaignId } = a.job;
  const outcome = a.campaign.spec.dryRun ? DRY_RUN_OUTCOME[real] : real;
  // Built field by field, in the record's order: conditional spreads cost an object and a copy
  // each, on every target.
  const record = {
    target: a.target,
    outcome,
    reason,
    attempts: a.claim.attemptsMade + 1,
  } as { -readonly [K in keyof OutcomeRecord]: OutcomeRecord[K] };
  if (a.claim.retryAfterWaits > 0) record.retryAfterWaits = a.claim.retryAfterWaits;
  if (end.conflicts > 0) record.conflicts = end.conflicts;
  record.error = error === null ? null : scrubError(error, end.secrets, deps.limits.maxErrorChars);
  record.at = Date.now();
  // Next to the outcome, in the same record: same slot, same retention (README, "Undo").
  const kept = undo !== undefined ? undo : end.kept;
  if (kept !== undefined) record.undo = kept;
  const nextToken = deps.continuing() ? deps.leases.newToken() : undefined;
  const recordJson = JSON.stringify(record);
  const step = await deps.finisher.finish({
    holder,
    token: a.token,
    campaignId,
    targetKey: a.targetKey,
    outcome,
    reason,
    recordJson,
    conflicts: end.conflicts,
    keptUndo: end.kept !== undefined,
    ...(nextToken === undefined ? {} : { nextToken }),
    call: callSample(a, end, overload),
  });
  if ('error' in step) throw step.error;
  if (step.recorded) deps.archiver.add(campaignId, { targetKey: a.targetKey, seq: step.seq, json: recordJson });
  a.run.settled(outcome, reason, step.recorded);
  return { step, nextToken };
}

/**
 * What the attempt tells its keys' adaptive concurrency: only for a campaign with an adaptive
 * limit (the others' scripts skip that work). An overload, with how long its calls were on the
 * way (the script estimates from it when they were sent); else a latency, only from calls the
 * platform answered: an attempt that ended on a reset or a 5xx with no such call says nothing.
 */
function callSample(a: Attempt, end: AttemptEnd, overload: boolean): CallSample | undefined {
  if (!a.campaign.adaptive) return undefined;
  if (overload) return end.sentCallMs === undefined ? undefined : { ms: end.sentCallMs, overload };
  return end.slowestCallMs === undefined ? undefined : { ms: end.slowestCallMs, overload };
}

/** The answers that say the platform is past its capacity: 429, 503, or no answer in time. */
function isOverload(err: unknown): boolean {
  if (err instanceof UpshiftError) return err.status === 429 || err.status === 503 || err.code === 'TIMEOUT';
  return classifyError(err).code === 'TIMEOUT';
}

/**
 * A run that frees a slot takes the target the same step picked for it and runs it next,
 * without a trip through BullMQ (the pick already holds its slots and lease, so a crash here is
 * recovered like any other run). `finish` claimed that pick with `nextToken` in the same call,
 * so a continued target costs no `claim` round trip; a declined claim (the target had an
 * outcome already) ends that run at its claim, as any declined claim does. The picks no run
 * took went to BullMQ for any worker (finisher.ts); a closing worker passes no token, and every
 * pick goes to BullMQ.
 */
function handOn(step: Extract<Finished, { readonly recorded: boolean }>, nextToken: string | undefined): Next | undefined {
  if (step.own === undefined || step.ownClaim === undefined || nextToken === undefined) return undefined;
  return { job: jobOfPick(step.own), claimed: { token: nextToken, claim: step.ownClaim, sentAt: step.sentAt } };
}
