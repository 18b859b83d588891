/**
 * The sandbox's connection-level faults: `resetRate` (connection reset, no answer, nothing
 * applied) and `slowRate`/`slowMs` (applied, answered late). Requests go over node:http with a
 * fresh connection each (`agent: false`), so no client-side retry or pooled socket can blur what
 * the sandbox did to exactly one request.
 */
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { defaultConfig, SANDBOX_KEYS, startSandbox, type Sandbox, type SandboxFixtures } from '../../src/sandbox/index.js';
import { setupSandbox } from '../support/deployment.js';

interface Answer {
  status: number;
  text: string;
}

/** One request on its own connection; rejects on a network error, or after `timeoutMs` of silence. */
function send(
  base: string,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(base + path, { method, headers: opts.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    if (opts.timeoutMs !== undefined) {
      req.setTimeout(opts.timeoutMs, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    }
    req.on('error', reject);
    req.end(opts.body);
  });
}

const ALLOY = { authorization: `bearer ${SANDBOX_KEYS.alloy}`, 'x-api-version': '2025-09' };
const TALLYFY = {
  authorization: `Bearer ${SANDBOX_KEYS.tallyfy}`,
  'x-tallyfy-client': 'APIClient',
  accept: 'application/json',
  'content-type': 'application/json',
};

const FIXTURES: SandboxFixtures = {
  alloy: {
    workflows: { 'wf-1': { latestVersion: 5 } },
    installs: [
      { workflowId: 'wf-1', userId: 'u-1', version: 4 },
      { workflowId: 'wf-1', userId: 'u-2', version: 4 },
    ],
  },
  tallyfy: { runs: [{ orgId: 'org-1', id: 'run-1', name: 'Onboarding' }] },
};


const upgradeU1 = (s: Sandbox, timeoutMs?: number) =>
  send(s.url, 'PUT', '/workflows/wf-1/upgrade?userId=u-1', { headers: ALLOY, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
const versionOf = (s: Sandbox, userId: string) => s.state().alloy!.installs!.find((i) => i.userId === userId)!.version;

const sb = setupSandbox({ record: true }, { config: defaultConfig(), fixtures: FIXTURES });

describe('resetRate', () => {
  it('resets the connection without an answer, after reading the body and before applying anything', async () => {
    sb.configure({ resetRate: 1, throttleRate: 1, failRate: 1 }); // a reset wins over every answered fault
    const body = JSON.stringify({ name: 'Renamed' });
    const err = (await send(sb.url, 'PUT', '/organizations/org-1/runs/run-1', { headers: TALLYFY, body }).then(
      () => null,
      (e: NodeJS.ErrnoException) => e,
    ))!;
    expect(err).not.toBeNull();
    expect(['ECONNRESET', 'EPIPE']).toContain(err.code); // the socket was reset, not answered nor timed out

    expect(sb.state().tallyfy!.runs![0]!.name).toBe('Onboarding');
    const [rec] = sb.received!;
    expect(rec).toMatchObject({ method: 'PUT', path: '/organizations/org-1/runs/run-1', body, fault: 'reset' });
    expect(rec!.status).toBeUndefined();
    expect(rec!.answeredAt).toBeUndefined(); // nothing was written back
    const s = sb.stats();
    expect(s.faults).toEqual({ failed: 0, throttled: 0, conflicts: 0, resets: 1, slow: 0, droppedWrites: 0 });
    expect(s.byStatus).toEqual({});
    expect(s.appliedByTarget).toEqual({});
    expect(s.requestsByTarget).toEqual({ 'tallyfy:org-1:run-1': 1 }); // it did reach the front of the target

    // The sandbox carries on, and the reset request is no longer counted in flight.
    sb.configure({ resetRate: 0, throttleRate: 0, failRate: 0 });
    expect((await upgradeU1(sb)).status).toBe(200);
    expect(sb.stats()).toMatchObject({ requests: 2, inFlight: 0, byStatus: { '200': 1 } });
    // An answered request says when its answer was written (the bench's hand-over gaps use it).
    const answered = sb.received![1]!;
    expect(answered.answeredAt).toBeGreaterThanOrEqual(answered.at);
  });

  it('resets about resetRate of requests, each one without a state change', async () => {
    sb.configure({ resetRate: 0.5 });
    let resets = 0;
    for (let i = 0; i < 40; i++) {
      const before = versionOf(sb, 'u-1');
      const outcome = await upgradeU1(sb).then(
        (a) => a.status,
        () => 'reset' as const,
      );
      if (outcome === 'reset') {
        resets++;
        expect(versionOf(sb, 'u-1')).toBe(before);
      } else {
        expect(outcome).toBe(200);
      }
      sb.load({ alloy: { installs: [{ workflowId: 'wf-1', userId: 'u-1', version: 4 }] } }); // back to v4
    }
    expect(resets).toBeGreaterThan(5);
    expect(resets).toBeLessThan(35);
    expect(sb.stats().faults.resets).toBe(resets);
    expect(sb.stats().appliedByTarget['alloy:wf-1:u-1']).toBe(40 - resets);
    expect(sb.received!.filter((r) => r.fault === 'reset')).toHaveLength(resets);
  });
});

describe('slowRate', () => {
  it('applies the change, then holds the answer slowMs (30 s by default) so the client times out first', async () => {
    const fresh = await startSandbox({ slowRate: 1, record: true });
    try {
      fresh.load(FIXTURES);
      const started = performance.now();
      const err = (await upgradeU1(fresh, 300).then(
        () => null,
        (e: NodeJS.ErrnoException) => e,
      ))!;
      expect(err?.code).toBe('CLIENT_TIMEOUT');
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(versionOf(fresh, 'u-1')).toBe(5); // applied before the wait
      const s = fresh.stats();
      expect(s.faults).toEqual({ failed: 0, throttled: 0, conflicts: 0, resets: 0, slow: 1, droppedWrites: 0 });
      expect(s.appliedByTarget).toEqual({ 'alloy:wf-1:u-1': 1 });
      expect(fresh.received![0]).toMatchObject({ status: 200, fault: 'slow' });

      // Other requests are not held up by a slow one.
      fresh.configure({ slowRate: 0 });
      expect((await send(fresh.url, 'PUT', '/workflows/wf-1/upgrade?userId=u-2', { headers: ALLOY, timeoutMs: 5000 })).status).toBe(200);
    } finally {
      await fresh.close(); // does not wait for the 30 s
    }
  });

  it('answers a patient client after slowMs on top of latencyMs', async () => {
    sb.configure({ slowRate: 1, slowMs: 150, latencyMs: 50 });
    const started = performance.now();
    const a = await upgradeU1(sb);
    expect(performance.now() - started).toBeGreaterThanOrEqual(195);
    expect(a).toEqual({ status: 200, text: '{"upgraded":true}' });
    expect(sb.stats().byStatus).toEqual({ '200': 1 });
  });

  it('never slows an injected transport fault (those answer from the proxy, at once)', async () => {
    sb.configure({ slowRate: 1, failRate: 1 });
    const a = await upgradeU1(sb, 5000);
    expect([500, 502, 503]).toContain(a.status);
    expect(sb.stats().faults).toMatchObject({ failed: 1, slow: 0 });
    expect(sb.received![0]!.fault).toBeUndefined();
  });
});

describe('determinism and configuration', () => {
  /** What happened to each of `n` requests: 'reset', the status, with '~' when answered slow. */
  const run = async (s: Sandbox, n: number): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const path = `/workflows/wf-1/upgrade?userId=${i % 2 === 0 ? 'u-1' : 'u-2'}`;
      const got = await send(s.url, 'PUT', path, { headers: ALLOY }).then(
        (a) => String(a.status),
        () => 'reset',
      );
      out.push(got === 'reset' ? got : `${got}${s.received!.at(-1)!.fault === 'slow' ? '~' : ''}`);
    }
    return out;
  };
  // slowMs 0: the slow draw still happens (and is recorded) without any wait.
  const opts = { seed: 42, record: true, resetRate: 0.25, throttleRate: 0.15, failRate: 0.15, slowRate: 0.3, slowMs: 0 };

  it('gives the same resets and slow answers for the same seed and request sequence', async () => {
    const a = await startSandbox(opts);
    const b = await startSandbox(opts);
    const c = await startSandbox({ ...opts, seed: 43 });
    try {
      for (const s of [a, b, c]) s.load(FIXTURES);
      const first = await run(a, 60);
      expect(await run(b, 60)).toEqual(first);
      expect(await run(c, 60)).not.toEqual(first);
      expect(first).toContain('reset');
      expect(first).toContain('200~');
      expect(first).toContain('200');
      expect(first).toContain('429');
      expect(a.stats().faults.resets).toBe(first.filter((x) => x === 'reset').length);
      expect(a.stats().faults.slow).toBe(first.filter((x) => x.endsWith('~')).length);
      a.reset(); // restarts every stream from the seed
      a.load(FIXTURES);
      expect(await run(a, 60)).toEqual(first);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('draws slow answers from their own stream: turning them on does not move resets, throttles or failures', async () => {
    const a = await startSandbox(opts);
    const b = await startSandbox({ ...opts, slowRate: 0 });
    try {
      for (const s of [a, b]) s.load(FIXTURES);
      const withSlow = await run(a, 60);
      const withoutSlow = await run(b, 60);
      expect(withSlow.map((x) => x.replace('~', ''))).toEqual(withoutSlow);
      expect(b.stats().faults.slow).toBe(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('validates the new options, at start and at runtime (also over HTTP)', async () => {
    await expect(startSandbox({ resetRate: 1.5 })).rejects.toThrow(/resetRate/);
    await expect(startSandbox({ slowRate: -0.1 })).rejects.toThrow(/slowRate/);
    await expect(startSandbox({ slowMs: 1.5 })).rejects.toThrow(/slowMs/);
    expect(() => sb.configure({ slowMs: -1 })).toThrow(/slowMs/);
    expect(() => sb.configure({ slowMs: 3_600_001 })).toThrow(/slowMs/);
    const config = (body: unknown) =>
      send(sb.url, 'POST', '/__sandbox/config', { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    expect((await config({ resetRate: 2 })).status).toBe(400);
    expect((await config({ slowRate: 'half' })).status).toBe(400);
    expect((await config({ resetRate: 1, slowRate: 0.5, slowMs: 10 })).status).toBe(204);
    // The control plane is never reset or slowed.
    expect((await send(sb.url, 'GET', '/__sandbox/stats')).status).toBe(200);
    await expect(upgradeU1(sb)).rejects.toThrow();
    expect(sb.stats().faults.resets).toBe(1);
  });
});
