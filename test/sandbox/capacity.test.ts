import { request } from 'undici';
import { describe, expect, it, vi } from 'vitest';
import { configIssue } from '../../src/sandbox/index.js';
import { setupSandbox } from '../support/deployment.js';
import { ALLOY, CONDUCTOR, DEFAULT_CONFIG, FIXTURES, apiOn } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

/**
 * Answers are held for a minute and the test hangs up instead of waiting: the sandbox ends a
 * held answer when its client goes, so the in-flight counts are whatever the test opened, whatever
 * the machine's speed.
 */
const HELD_MS = 60_000;

describe('capacity', () => {
  const users = ['t1-a', 't1-b', 't1-c', 't1-d', 't1-e', 't1-f', 't2-a'];
  const load = () =>
    sb.load({
      alloy: { workflows: { 'wf-1': { latestVersion: 5 } }, installs: users.map((userId) => ({ workflowId: 'wf-1', userId, version: 4 })) },
    });

  /** Opens one held request and returns once the sandbox counts it on its key. */
  async function hold(userId: string, key: string, n: number, aborts: AbortController[]): Promise<{ answered: Promise<unknown> }> {
    const abort = new AbortController();
    aborts.push(abort);
    const answered = request(`${sb.url}/workflows/wf-1/upgrade?userId=${userId}`, { method: 'PUT', headers: ALLOY, signal: abort.signal }).catch(
      (err: unknown) => err,
    );
    await vi.waitFor(() => expect(sb.stats().maxInFlightByKey[key]).toBe(n), { timeout: 10_000, interval: 5 });
    return { answered };
  }

  it('answers at the base latency up to N in flight per key, slower above it, and 429 above 2N', async () => {
    load();
    sb.configure({ latencyMs: HELD_MS, capacity: 2, limitKeyPattern: String.raw`^alloy:[^:]+:(t\d+)-` });
    const aborts: AbortController[] = [];
    const held: Promise<unknown>[] = [];
    for (const [i, user] of ['t1-a', 't1-b', 't1-c', 't1-d'].entries()) held.push((await hold(user, 't1', i + 1, aborts)).answered);

    // A fifth call on t1 is over twice the capacity: shed at once, in the platform's own 429 shape.
    const shed = await api('PUT', '/workflows/wf-1/upgrade?userId=t1-e', { headers: ALLOY });
    expect(shed.status).toBe(429);
    expect(shed.headers['retry-after']).toBe('1');
    expect(shed.json).toEqual({ message: 'too many requests', retryable: true });

    // Another key has a capacity of its own.
    held.push((await hold('t2-a', 't2', 1, aborts)).answered);

    const delays = sb.received!.map((r) => [new URL(r.path, sb.url).searchParams.get('userId'), r.delayMs]);
    expect(delays).toEqual([
      ['t1-a', HELD_MS],
      ['t1-b', HELD_MS],
      ['t1-c', HELD_MS * 1.5], // 3 in flight on a capacity of 2
      ['t1-d', HELD_MS * 2],
      ['t1-e', 0],
      ['t2-a', HELD_MS],
    ]);
    const s = sb.stats();
    expect(s.overCapacity).toBe(1);
    expect(s.faults.throttled).toBe(0); // a shed call is not an injected fault
    expect(s.appliedByTarget['alloy:wf-1:t1-e']).toBeUndefined(); // nothing was applied

    for (const a of aborts) a.abort();
    await Promise.all(held);
    await vi.waitFor(() => expect(sb.stats().inFlight).toBe(0), { timeout: 10_000, interval: 5 });

    // With the load gone, the key takes calls at the base latency again.
    sb.configure({ latencyMs: 0 });
    expect((await api('PUT', '/workflows/wf-1/upgrade?userId=t1-f', { headers: ALLOY })).status).toBe(200);
    expect(sb.stats().overCapacity).toBe(1);
  });

  it('measures a request without a limit key against every request in flight', async () => {
    sb.configure({ latencyMs: HELD_MS, capacity: 1 });
    const aborts: AbortController[] = [];
    const abort = new AbortController();
    aborts.push(abort);
    const first = request(`${sb.url}/api/workflow/exec-1`, { headers: CONDUCTOR, signal: abort.signal }).catch((err: unknown) => err);
    await vi.waitFor(() => expect(sb.received![0]?.delayMs).toBe(HELD_MS), { timeout: 10_000, interval: 5 });
    const second = new AbortController();
    const secondAnswer = request(`${sb.url}/api/workflow/exec-1`, { headers: CONDUCTOR, signal: second.signal }).catch((err: unknown) => err);
    await vi.waitFor(() => expect(sb.received![1]?.delayMs).toBe(HELD_MS * 2), { timeout: 10_000, interval: 5 });
    expect((await api('GET', '/api/workflow/exec-1', { headers: CONDUCTOR })).status).toBe(429);
    expect(sb.stats().overCapacity).toBe(1);
    abort.abort();
    second.abort();
    await Promise.all([first, secondAnswer]);
  });

  it('is unlimited by default, and refuses a capacity below 1', async () => {
    expect(DEFAULT_CONFIG.capacity).toBeNull();
    expect(configIssue('capacity', 40)).toBeNull();
    expect(configIssue('capacity', null)).toBeNull();
    expect(configIssue('capacity', 0)).not.toBeNull();
    expect(configIssue('capacity', 1.5)).not.toBeNull();
    const answers = await Promise.all(Array.from({ length: 10 }, () => api('GET', '/api/workflow/exec-1', { headers: CONDUCTOR })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(sb.stats().overCapacity).toBe(0);
  });
});
