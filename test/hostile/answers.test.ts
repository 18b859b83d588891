/**
 * Platform answers that are malformed: not JSON, the wrong shape, an error body under 200, 5 MB,
 * a drip slower than the timeout, no answer, a broken HTTP message. A small node:http server (not
 * the sandbox, which is always well-formed) plays the platform; an in-process worker runs Alloy
 * and Nected campaigns against it. Every target must end with an outcome and a reason, error
 * texts stay bounded, and the worker keeps working afterwards.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS } from '../../src/sandbox/index.js';
import { DEFAULTS, streamReport, type ConnectionRegistry, type ReportLine } from '../../src/shared/index.js';
import { waitForCompletion } from '../support/harness.js';
import { testConnections } from '../support/connections.js';
import { setupDeployment } from '../support/deployment.js';

const TIMEOUT_MS = 1000;
const ATTEMPTS = 2;
const FIVE_MB = 5 * 1024 * 1024;
const DRIP_EVERY_MS = 200;

/* The misbehaving platform ------------------------------------------------------------------- */

type Behaviour = (req: IncomingMessage, res: ServerResponse) => void;

const json = (status: number, body: string, headers: Record<string, string> = {}): Behaviour => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
};
const text = (status: number, body: string, type = 'text/html'): Behaviour => (_req, res) => {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

/** A valid JSON answer padded to 5 MB: only a client that bounds its read can fail it. */
function huge(status: number, prefix: string, suffix: string, pad = ' '): Behaviour {
  const body = Buffer.alloc(FIVE_MB, pad);
  body.write(prefix, 0);
  body.write(suffix, FIVE_MB - suffix.length);
  return (_req, res) => {
    res.on('error', () => undefined); // the client hangs up after its bound
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': FIVE_MB });
    res.end(body);
  };
}

/** The same 5 MB, chunked: no length declared, so only the bounded read's own count stops it. */
function hugeChunked(prefix: string, suffix: string): Behaviour {
  const body = Buffer.alloc(FIVE_MB, ' ');
  body.write(prefix, 0);
  body.write(suffix, FIVE_MB - suffix.length);
  return (_req, res) => {
    res.on('error', () => undefined);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.end(body);
  };
}

/** Headers at once, then the body one byte every 200 ms: done only long after the timeout. */
function drip(body: string): Behaviour {
  const padded = ' '.repeat(60) + body; // leading whitespace is valid JSON; ~15 s in all
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(padded) });
    res.flushHeaders();
    let i = 0;
    const timer = setInterval(() => {
      if (i >= padded.length) return void clearInterval(timer);
      res.write(padded[i++]);
      if (i === padded.length) res.end();
    }, DRIP_EVERY_MS);
    res.on('close', () => clearInterval(timer));
    res.on('error', () => undefined);
  };
}

/** Reads the request and never answers. */
const silent: Behaviour = (_req, res) => {
  res.on('error', () => undefined);
};

/** Not HTTP at all. */
const garbage: Behaviour = (req) => {
  req.socket.end('NOT HTTP AT ALL\r\n\r\n{"upgraded":true}');
};

/** Promises 1000 bytes, sends 10, hangs up. */
const truncated: Behaviour = (req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': 1000 });
  res.write('{"upgraded');
  res.on('error', () => undefined);
  setImmediate(() => req.socket.destroy());
};

/** A 100 KB header: over any client's header limit. */
const hugeHeader: Behaviour = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'x-padding': 'h'.repeat(100_000) });
  res.end('{"upgraded":true}');
};

const ERROR_BODY = '{"error":"Internal Server Error","status":500,"trace":"java.lang.NullPointerException"}';
const graph = (checksum: unknown) => JSON.stringify({ data: { name: 'g', nodes: [], edges: [], checksum } });

interface Case {
  behaviour: Behaviour;
  outcome: 'upgraded' | 'skipped' | 'failed';
  reason: string;
  /** What the stored error must say (failed targets). */
  error?: RegExp;
  attempts?: number;
}

const ALLOY: Record<string, Case> = {
  ok: { behaviour: json(200, '{"upgraded":true}'), outcome: 'upgraded', reason: 'UPGRADED' },
  'not-upgraded': { behaviour: json(200, '{"upgraded":false}'), outcome: 'skipped', reason: 'NOT_UPGRADED' },
  'non-json': { behaviour: text(200, '<html><body>Service Unavailable</body></html>'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /not JSON: <html>/, attempts: 1 },
  'json-lies': { behaviour: text(200, '', 'application/json'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /not JSON/, attempts: 1 },
  'wrong-shape': { behaviour: json(200, '{"upgraded":"yes"}'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /unexpected body/, attempts: 1 },
  'wrong-shape-array': { behaviour: json(200, '[{"upgraded":true}]'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /unexpected body/, attempts: 1 },
  'wrong-shape-null': { behaviour: json(200, 'null'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /unexpected body/, attempts: 1 },
  // Documented (docs/REASONS.md, README): only an explicit `upgraded: false` means nothing was done.
  'error-body': { behaviour: json(200, ERROR_BODY), outcome: 'upgraded', reason: 'UPGRADED' },
  huge: { behaviour: huge(200, '{"upgraded":true,"pad":"', '"}', 'x'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /over the size bound/, attempts: 1 },
  'huge-chunked': { behaviour: hugeChunked('{"upgraded":true,"pad":"', '"}'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /over the size bound/, attempts: 1 },
  'huge-error': { behaviour: huge(500, '', '', 'e'), outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^SERVER_ERROR: alloy upgrade: HTTP 500 e{300}$/, attempts: ATTEMPTS },
  drip: { behaviour: drip('{"upgraded":true}'), outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^TIMEOUT: /, attempts: ATTEMPTS },
  silent: { behaviour: silent, outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^TIMEOUT: /, attempts: ATTEMPTS },
  truncated: { behaviour: truncated, outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^NETWORK_ERROR: /, attempts: ATTEMPTS },
  garbage: { behaviour: garbage, outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^(NETWORK_ERROR|INTERNAL_ERROR): /, attempts: ATTEMPTS },
  'huge-header': { behaviour: hugeHeader, outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^(NETWORK_ERROR|INTERNAL_ERROR): /, attempts: ATTEMPTS },
};

/** Nected: the case is the entity id; the GET misbehaves, except for the `patch-*` cases. */
const NECTED_GET: Record<string, Case> = {
  ok: { behaviour: json(200, graph('c1')), outcome: 'upgraded', reason: 'UPGRADED' },
  'non-json': { behaviour: text(200, 'Bad Gateway'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /not JSON: Bad Gateway/, attempts: 1 },
  'wrong-shape': { behaviour: json(200, graph(5)), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /no data\.checksum/, attempts: 1 },
  'wrong-shape-array': { behaviour: json(200, `[${graph('c1')}]`), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /no data\.checksum/, attempts: 1 },
  'error-body': { behaviour: json(200, ERROR_BODY), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /no data\.checksum/, attempts: 1 },
  huge: { behaviour: huge(200, '{"data":{"checksum":"c1","pad":"', '"}}', 'x'), outcome: 'failed', reason: 'UNEXPECTED_RESPONSE', error: /over the size bound/, attempts: 1 },
  'huge-error': { behaviour: huge(503, '', '', 'e'), outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^SERVER_ERROR: nected get workflow: HTTP 503 e{300}$/, attempts: ATTEMPTS },
  drip: { behaviour: drip(graph('c1')), outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^TIMEOUT: /, attempts: ATTEMPTS },
  silent: { behaviour: silent, outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^TIMEOUT: /, attempts: ATTEMPTS },
  garbage: { behaviour: garbage, outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^(NETWORK_ERROR|INTERNAL_ERROR): /, attempts: ATTEMPTS },
  // The PATCH answer's body is not read (docs/REASONS.md: nected 2xx is UPGRADED)...
  'patch-non-json': { behaviour: json(200, graph('c1')), outcome: 'upgraded', reason: 'UPGRADED' },
  // ...but its status and its time still count.
  'patch-drip': { behaviour: json(200, graph('c1')), outcome: 'failed', reason: 'RETRIES_EXHAUSTED', error: /^TIMEOUT: /, attempts: ATTEMPTS },
  'patch-huge-409': { behaviour: json(200, graph('c1')), outcome: 'failed', reason: 'CONFLICT_RETRIES_EXHAUSTED', attempts: 1 },
};
const NECTED_PATCH: Record<string, Behaviour> = {
  'patch-non-json': text(200, '<html>OK</html>'),
  'patch-drip': drip('{}'),
  'patch-huge-409': huge(409, '{"code":"CONFLICT","pad":"', '"}', 'c'),
};
const okPatch = json(200, '{"data":{}}');

interface Seen {
  method: string;
  url: string;
}

async function startPlatform(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push({ method: req.method ?? '', url: req.url ?? '' });
      const alloy = /^\/workflows\/wf\/upgrade$/.test(url.pathname) && req.method === 'PUT';
      const nected = /^\/dev\/v1\/workflow\/([^/]+)$/.exec(url.pathname);
      let behaviour: Behaviour | undefined;
      if (alloy && req.headers.authorization === `bearer ${SANDBOX_KEYS.alloy}`) {
        behaviour = ALLOY[url.searchParams.get('userId') ?? '']?.behaviour;
      } else if (nected && req.headers['nected-api-key'] === SANDBOX_KEYS.nected) {
        const id = decodeURIComponent(nected[1]!);
        if (req.method === 'GET') behaviour = NECTED_GET[id]?.behaviour;
        if (req.method === 'PATCH') behaviour = NECTED_PATCH[id] ?? okPatch;
      }
      (behaviour ?? json(404, '{"message":"not found"}'))(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/* The campaigns ------------------------------------------------------------------------------ */

describe('malformed platform answers', () => {
  const t = setupDeployment({ scope: 'all', credentials: true });
  let platform: Awaited<ReturnType<typeof startPlatform>>;
  let connections: ConnectionRegistry;

  beforeAll(async () => {
    platform = await startPlatform();
    t.defer(() => platform.close());
    connections = testConnections(platform.url);
    await t.startWorker({ connections, concurrency: 8 });
  });

  const connection = (ref: string) => ({ baseUrl: platform.url, credentialRef: ref, timeoutMs: TIMEOUT_MS });
  const retry = { attempts: ATTEMPTS, backoffMs: 1 };

  async function run(spec: Record<string, unknown>, targets: Record<string, string>[]): Promise<Map<string, ReportLine>> {
    const { campaignId } = await enqueueCampaign(spec, targets, { redis: t.redis, prefix: t.prefix, connections });
    const status = await waitForCompletion(t.prefix, campaignId, 60_000);
    expect(status).toMatchObject({ state: 'completed', total: targets.length, pending: 0, active: 0 });
    expect(status.upgraded + status.skipped + status.failed).toBe(targets.length);
    const lines = new Map<string, ReportLine>();
    for await (const line of streamReport(t.redis, t.prefix, campaignId)) lines.set(line.target, line);
    return lines;
  }

  function expectOutcomes(lines: Map<string, ReportLine>, cases: Record<string, Case>): void {
    expect([...lines.keys()].sort()).toEqual(Object.keys(cases).sort());
    for (const [id, c] of Object.entries(cases)) {
      const line = lines.get(id)!;
      expect({ id, outcome: line.outcome, reason: line.reason }).toEqual({ id, outcome: c.outcome, reason: c.reason });
      if (c.attempts !== undefined) expect(line.attempts, id).toBe(c.attempts);
      if (c.outcome === 'failed') {
        expect(line.error, id).toEqual(expect.any(String));
        if (c.error) expect(line.error, id).toMatch(c.error);
      }
      // Bounded, whatever the platform sent (5 MB bodies included).
      if (line.error !== null) expect(line.error.length, `${id}: ${line.error.slice(0, 80)}`).toBeLessThanOrEqual(DEFAULTS.maxErrorChars);
    }
  }

  it('alloy.upgradeWorkflow: every answer ends in an outcome with its reason', async () => {
    const started = performance.now();
    const lines = await run(
      { id: 'alloy-answers', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' }, retry },
      Object.keys(ALLOY).map((userId) => ({ userId })),
    );
    expectOutcomes(lines, ALLOY);
    // The drip would take ~15 s per attempt: the timeout cut it off, on every attempt.
    expect(performance.now() - started).toBeLessThan(ATTEMPTS * TIMEOUT_MS + 8000);
    const dripCalls = platform.seen.filter((s) => s.url.endsWith('userId=drip'));
    expect(dripCalls).toHaveLength(ATTEMPTS);
  });

  it('nected.updateWorkflow: every answer ends in an outcome with its reason', async () => {
    const lines = await run(
      {
        id: 'nected-answers',
        connection: connection('UPSHIFT_TEST_NECTED_KEY'),
        operation: { type: 'nected.updateWorkflow', patch: [{ op: 'replace', path: '/name', value: 'g2' }], conflictRetries: 0 },
        retry,
      },
      Object.keys(NECTED_GET).map((entityId) => ({ entityId })),
    );
    expectOutcomes(lines, NECTED_GET);
    // A wrong answer to the read never leads to a write.
    const patched = new Set(platform.seen.filter((s) => s.method === 'PATCH').map((s) => decodeURIComponent(s.url.split('/').pop()!)));
    expect([...patched].sort()).toEqual(['ok', 'patch-drip', 'patch-huge-409', 'patch-non-json']);
  });

  it('the worker is still up and working afterwards', async () => {
    expect(t.worker.worker.isRunning()).toBe(true);
    const lines = await run(
      { id: 'after', connection: connection('UPSHIFT_TEST_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' }, retry },
      [{ userId: 'ok' }, { userId: 'not-upgraded' }],
    );
    expect(lines.get('ok')).toMatchObject({ outcome: 'upgraded', reason: 'UPGRADED', error: null });
    expect(lines.get('not-upgraded')).toMatchObject({ outcome: 'skipped', reason: 'NOT_UPGRADED' });
  });
});
