import { DEFAULTS, type Classification, type ReasonCode } from '../shared/index.js';
import { backoffDelayMs, type BackoffLimits } from './backoff.js';

/**
 * The one retry policy, as in Temporal's SDK: a failure carries its handling as data (its code,
 * whether it is retryable, the Retry-After it named) and this function alone turns that data,
 * with the attempts made and the spec's `retry` settings, into what happens next. Operations
 * only throw; settle.ts carries the decision out.
 */
export type Decision =
  /** Park the target and run it again after `backoffMs`; its slots free meanwhile. */
  | { readonly kind: 'retry'; readonly backoffMs: number }
  /** Retry-After: pause the whole connection for `waitMs`; the target keeps its attempt. */
  | { readonly kind: 'throttle'; readonly waitMs: number }
  /** Record the target failed with `reason`; `note` says why a retryable error was not retried. */
  | { readonly kind: 'fail'; readonly reason: ReasonCode; readonly note?: string };

/** What the policy reads of a failure: everything but its message. */
export type Failure = Pick<Classification, 'code' | 'retryable' | 'retryAfterMs'>;

export interface AttemptHistory {
  /** 1-based number of the attempt that just failed. */
  readonly attempt: number;
  /** Retry-After waits this target has sat out already. */
  readonly retryAfterWaits: number;
}

/** The spec's `retry` settings. */
export interface RetrySettings {
  readonly attempts: number;
  readonly backoffMs: number;
}

export type RetryLimits = BackoffLimits & { readonly maxRetryAfterWaits: number };

/**
 * - 429 (with or without Retry-After) and 503 with Retry-After pause the whole connection;
 *   the target keeps its attempts, up to `maxRetryAfterWaits` waits. A 429 naming no time
 *   waits one backoff step; a 503 with `Retry-After: 0` is an ordinary retry.
 * - Other retryable errors retry after an exponential backoff while attempts remain.
 * - Everything else fails with its own code; retryable ones that ran out, RETRIES_EXHAUSTED.
 */
export function decide(failure: Failure, history: AttemptHistory, retry: RetrySettings, limits: RetryLimits = DEFAULTS): Decision {
  // `Retry-After: 0` on a 503 names no pause: it is an ordinary retry.
  const paused = failure.code === 'THROTTLED' || (failure.code === 'SERVER_ERROR' && (failure.retryAfterMs ?? 0) > 0);
  if (paused) {
    if (history.retryAfterWaits < limits.maxRetryAfterWaits) {
      const asked = failure.retryAfterMs ?? backoffDelayMs(history.retryAfterWaits + 1, retry.backoffMs, undefined, limits);
      return { kind: 'throttle', waitMs: Math.min(asked, limits.maxRetryAfterMs) };
    }
    return { kind: 'fail', reason: 'RETRIES_EXHAUSTED', note: `after ${history.retryAfterWaits} Retry-After waits` };
  }
  if (failure.retryable && history.attempt < retry.attempts) {
    return { kind: 'retry', backoffMs: backoffDelayMs(history.attempt, retry.backoffMs, failure.retryAfterMs, limits) };
  }
  return { kind: 'fail', reason: failure.retryable ? 'RETRIES_EXHAUSTED' : failure.code };
}
