import { describe, expect, it } from 'vitest';
import { campaignOfHolder, decodeJob, encodeJob, jobOfPick } from '../../src/shared/index.js';
import { decide } from '../../src/worker/retry-policy.js';

const limits = { maxBackoffMs: 10_000, maxRetryAfterMs: 5_000, maxRetryAfterWaits: 2 };
const retry = { attempts: 3, backoffMs: 100 };
const first = { attempt: 1, retryAfterWaits: 0 };

describe('retry policy', () => {
  it('retries a retryable failure later while attempts remain, then fails RETRIES_EXHAUSTED', () => {
    const failure = { code: 'TIMEOUT', retryable: true, retryAfterMs: undefined } as const;
    const d = decide(failure, first, retry, limits);
    expect(d.kind).toBe('retry');
    expect(d.kind === 'retry' && d.backoffMs).toBeGreaterThanOrEqual(50);
    expect(decide(failure, { attempt: 3, retryAfterWaits: 0 }, retry, limits)).toEqual({ kind: 'fail', reason: 'RETRIES_EXHAUSTED' });
  });

  it('fails a permanent failure with its own code at once', () => {
    expect(decide({ code: 'NOT_FOUND', retryable: false, retryAfterMs: undefined }, first, retry, limits)).toEqual({ kind: 'fail', reason: 'NOT_FOUND' });
  });

  it('pauses the connection on 429 and on 503 with Retry-After, clipped, up to maxRetryAfterWaits', () => {
    expect(decide({ code: 'THROTTLED', retryable: true, retryAfterMs: 60_000 }, first, retry, limits)).toEqual({ kind: 'throttle', waitMs: 5_000 });
    expect(decide({ code: 'SERVER_ERROR', retryable: true, retryAfterMs: 700 }, first, retry, limits)).toEqual({ kind: 'throttle', waitMs: 700 });
    expect(decide({ code: 'THROTTLED', retryable: true, retryAfterMs: 700 }, { attempt: 1, retryAfterWaits: 2 }, retry, limits)).toEqual({
      kind: 'fail',
      reason: 'RETRIES_EXHAUSTED',
      note: 'after 2 Retry-After waits',
    });
  });

  it('treats a 503 with Retry-After: 0 as an ordinary retry', () => {
    expect(decide({ code: 'SERVER_ERROR', retryable: true, retryAfterMs: 0 }, first, retry, limits).kind).toBe('retry');
  });
});

describe('target job data', () => {
  it('decodes what it encodes, keeps the stored one-letter fields, and reads a dotted campaign id', () => {
    const job = jobOfPick({ holder: 'spring.v2.17', entry: '{"workflowId":"w1"}' });
    expect(job).toEqual({ campaignId: 'spring.v2', holder: 'spring.v2.17', targetJson: '{"workflowId":"w1"}' });
    expect(encodeJob(job)).toEqual({ c: 'spring.v2', h: 'spring.v2.17', e: '{"workflowId":"w1"}' });
    expect(decodeJob(encodeJob(job))).toEqual(job);
    expect(campaignOfHolder('c.1')).toBe('c');
  });
});
