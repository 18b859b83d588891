import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../src/worker/backoff.js';
import { scrubError } from '../../src/shared/scrub.js';

const limits = { maxBackoffMs: 10_000, maxRetryAfterMs: 5_000 };

describe('backoffDelayMs', () => {
  it('grows exponentially with equal jitter', () => {
    expect(backoffDelayMs(1, 100, undefined, limits, () => 0)).toBe(50);
    expect(backoffDelayMs(1, 100, undefined, limits, () => 1)).toBe(100);
    expect(backoffDelayMs(3, 100, undefined, limits, () => 1)).toBe(400);
  });
  it('is capped, and never sooner than a bounded Retry-After', () => {
    expect(backoffDelayMs(30, 100, undefined, limits, () => 1)).toBe(10_000);
    expect(backoffDelayMs(1, 100, 3000, limits, () => 0)).toBe(3000);
    expect(backoffDelayMs(1, 100, 60_000, limits, () => 0)).toBe(5000);
  });
});

describe('scrubError', () => {
  it('removes the credential and token-shaped values, and truncates', () => {
    const out = scrubError('echo: bearer abc.def key=s3cr3t-value {"x-authorization":"tok123"} s3cr3t-value', ['s3cr3t-value'], 500);
    expect(out).not.toContain('abc.def');
    expect(out).not.toContain('s3cr3t-value');
    expect(out).not.toContain('tok123');
    expect(scrubError('x'.repeat(50), [], 10)).toBe(`${'x'.repeat(9)}…`); // 10 characters in all
  });
});
