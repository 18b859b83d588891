import { DEFAULTS } from '../shared/index.js';

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
