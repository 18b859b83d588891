import { describe, expect, it } from 'vitest';
import { buildUrl, parseRetryAfterMs } from '../../src/shared/index.js';
import { errorFromResponse } from '../../src/shared/http.js';

const res = (status: number, text = '', headers: Record<string, string> = {}) => ({ status, text, headers, truncated: false });

describe('buildUrl', () => {
  it('keeps every hostile id inside one path segment', () => {
    const url = new URL(buildUrl('https://api.example.com/base/', ['runs', 'a/../b?x=1#f %2F é'], { userId: 'u&v=1#?' }));
    expect(url.host).toBe('api.example.com');
    expect(url.pathname.split('/')).toEqual(['', 'base', 'runs', encodeURIComponent('a/../b?x=1#f %2F é')]);
    expect(url.hash).toBe('');
    expect([...url.searchParams.entries()]).toEqual([['userId', 'u&v=1#?']]);
  });
});

describe('parseRetryAfterMs', () => {
  it('reads delta-seconds and HTTP dates, ignores junk', () => {
    expect(parseRetryAfterMs('3')).toBe(3000);
    expect(parseRetryAfterMs(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfterMs('soon')).toBeUndefined();
    expect(parseRetryAfterMs(undefined)).toBeUndefined();
    expect(parseRetryAfterMs('-1')).toBeUndefined();
  });
});

describe('errorFromResponse', () => {
  it.each([
    [400, 'INVALID_REQUEST', false],
    [401, 'UNAUTHORIZED', false],
    [403, 'FORBIDDEN', false],
    [404, 'NOT_FOUND', false],
    [409, 'STATE_CONFLICT', false],
    [410, 'INVALID_REQUEST', false],
    [422, 'INVALID_REQUEST', false],
    [408, 'SERVER_ERROR', true],
    [429, 'THROTTLED', true],
    [500, 'SERVER_ERROR', true],
    [503, 'SERVER_ERROR', true],
  ] as const)('maps %i to %s (retryable %s)', (status, code, retryable) => {
    const e = errorFromResponse(res(status), 'x');
    expect(e.code).toBe(code);
    expect(e.retryable).toBe(retryable);
    expect(e.status).toBe(status);
  });

  it('carries Retry-After on 429 and 503', () => {
    expect(errorFromResponse(res(429, '', { 'retry-after': '2' }), 'x').retryAfterMs).toBe(2000);
    expect(errorFromResponse(res(503, '', { 'retry-after': '5' }), 'x').retryAfterMs).toBe(5000);
  });

  it("honours Conductor's retryable flag and per-platform overrides", () => {
    expect(errorFromResponse(res(409, '{"message":"busy","retryable":true}'), 'x').retryable).toBe(true);
    expect(errorFromResponse(res(400, '{}'), 'x', { 400: 'REINSTALL_REQUIRED' }).code).toBe('REINSTALL_REQUIRED');
  });
});
