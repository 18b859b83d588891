import { DEFAULTS, type Classification, type ReasonCode } from '../shared/index.js';

export interface BackoffLimits {
  readonly maxBackoffMs: number;
  readonly maxRetryAfterMs: number;
}

/**
 * Delay before retry number `attemptsMade` (1 after the first failure): exponential from
 * `baseMs` with equal jitter (half fixed, half random, so retries of a burst spread out but
 * never come sooner than half the step), and never sooner than the platform's Retry-After.
 */
export function backoffDelayMs(
  attemptsMade: number,
  baseMs: number,
  retryAfterMs: number | undefined,
  limits: BackoffLimits = DEFAULTS,
  random: () => number = Math.random,
): number {
  const step = Math.min(baseMs * 2 ** Math.max(0, attemptsMade - 1), limits.maxBackoffMs);
  const jittered = Math.round(step / 2 + random() * (step / 2));
  const asked = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, limits.maxRetryAfterMs);
  return Math.max(jittered, asked);
}

export type Decision =
  | { readonly kind: 'throttle'; readonly waitMs: number }
  | { readonly kind: 'retry'; readonly backoffMs: number }
  | { readonly kind: 'fail'; readonly reason: ReasonCode; readonly note?: string };

export interface AttemptState {
  /** 1-based number of the attempt that just failed. */
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly backoffMs: number;
  /** Retry-After waits this target has sat out already. */
  readonly retryAfterWaits: number;
}

/**
 * The one place that decides what a failed attempt leads to, from the error's data alone.
 * - 429 (with or without Retry-After) and 503 with Retry-After pause the whole connection;
 *   the target keeps its attempts, up to `maxRetryAfterWaits` waits. A 429 naming no time
 *   waits one backoff step; a 503 with `Retry-After: 0` is an ordinary retry.
 * - Other retryable errors retry after an exponential backoff while attempts remain.
 * - Everything else fails with its own code; retryable ones that ran out, RETRIES_EXHAUSTED.
 */
export function decide(
  c: Classification,
  s: AttemptState,
  limits: BackoffLimits & { readonly maxRetryAfterWaits: number } = DEFAULTS,
): Decision {
  // `Retry-After: 0` on a 503 names no pause: it is an ordinary retry.
  const paused = c.code === 'THROTTLED' || (c.code === 'SERVER_ERROR' && (c.retryAfterMs ?? 0) > 0);
  if (paused) {
    if (s.retryAfterWaits < limits.maxRetryAfterWaits) {
      const asked = c.retryAfterMs ?? backoffDelayMs(s.retryAfterWaits + 1, s.backoffMs, undefined, limits);
      return { kind: 'throttle', waitMs: Math.min(asked, limits.maxRetryAfterMs) };
    }
    return { kind: 'fail', reason: 'RETRIES_EXHAUSTED', note: `after ${s.retryAfterWaits} Retry-After waits` };
  }
  if (c.retryable && s.attempt < s.maxAttempts) {
    return { kind: 'retry', backoffMs: backoffDelayMs(s.attempt, s.backoffMs, c.retryAfterMs, limits) };
  }
  return { kind: 'fail', reason: c.retryable ? 'RETRIES_EXHAUSTED' : c.code };
}
