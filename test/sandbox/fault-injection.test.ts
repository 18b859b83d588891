/**
 * Answered faults (failRate, throttleRate) on the shared fixtures. The connection-level ones are in
 * faults.test.ts, apart because it starts its sandbox with other fixtures and config.
 */
import { describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { setupSandbox } from '../support/deployment.js';
import { call, without, ALLOY, CONDUCTOR, FIXTURES, DEFAULT_CONFIG, apiOn } from './support.js';

const sb = setupSandbox({ record: true }, { config: DEFAULT_CONFIG, fixtures: FIXTURES });
const api = apiOn(sb);

describe('fault injection', () => {
  const statusesOf = async (s: Sandbox, n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      out.push((await call(s.url, 'GET', '/api/workflow/exec-1', { headers: CONDUCTOR })).status);
    }
    return out;
  };

  it('is reproducible for a seed', async () => {
    const opts = { seed: 42, failRate: 0.3, throttleRate: 0.2 };
    const a = await startSandbox(opts);
    const b = await startSandbox(opts);
    const c = await startSandbox({ ...opts, seed: 43 });
    try {
      for (const s of [a, b, c]) s.load(FIXTURES);
      const first = await statusesOf(a, 50);
      expect(await statusesOf(b, 50)).toEqual(first);
      expect(await statusesOf(c, 50)).not.toEqual(first);
      expect(new Set(first)).toContain(200);
      expect(new Set(first)).toContain(429);
      expect(first.some((s) => s >= 500)).toBe(true);
      a.reset(); // restarts the sequence from the seed
      a.load(FIXTURES);
      expect(await statusesOf(a, 50)).toEqual(first);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('fails every request at failRate 1, before auth, without touching state', async () => {
    sb.configure({ failRate: 1, retryAfterS: 3 });
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const r = await api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: without(ALLOY, 'authorization') });
      seen.add(r.status);
      expect([500, 502, 503]).toContain(r.status);
      expect(r.json).toEqual({ message: 'injected fault', retryable: true });
      expect(r.headers['retry-after']).toBe(r.status === 503 ? '3' : undefined);
    }
    expect(seen.size).toBeGreaterThan(1);
    expect(sb.stats().faults.failed).toBe(50);
    expect(sb.state().alloy!.installs![0]!.version).toBe(4);
  });

  it('throttles every request at throttleRate 1 with Retry-After', async () => {
    sb.configure({ throttleRate: 1, failRate: 1, retryAfterS: 0 });
    const r = await api('PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY });
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('0');
    expect(sb.stats().faults).toEqual({ failed: 0, throttled: 1, conflicts: 0, resets: 0, slow: 0, droppedWrites: 0 });
  });

  it('never faults the control plane', async () => {
    sb.configure({ failRate: 1, latencyMs: 5_000 });
    const r = await call(sb.url, 'GET', '/__sandbox/stats');
    expect(r.status).toBe(200);
  });
});
