/**
 * Hostile target ids, end to end: enqueue, an in-process worker, and the sandbox recording every
 * request as received. An id may hold anything printable (README: "no input can change a
 * request's host, path segments, query or headers"); ids that could (CR/LF, NUL, "/") are refused
 * at enqueue, naming the line and field, with nothing written.
 */
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import type { ReceivedRequest } from '../../src/sandbox/server.js';
import { InputError, streamReport, type ReportLine } from '../../src/shared/index.js';
import { keysUnder, waitForCompletion } from '../support/harness.js';
import { setupDeployment } from '../support/deployment.js';

const PLAIN = 'plain-id';

/** Legal ids that each try to break out of their segment or query value. */
const ACCEPTED: readonly string[] = [
  PLAIN,
  '..%2F..%2Fadmin',
  '%2e%2e',
  '...',
  '.hidden',
  'a?b=c&d=e',
  '?',
  'frag#ment',
  '#',
  '%2F',
  '%252F',
  '%',
  '%zz',
  'a&userId=evil',
  '&',
  'a+b',
  '+',
  'with space',
  ' lead',
  'trail ',
  'semi;colon:at@eq=comma,dollar$bang!star*quote\'paren()',
  '\u{1F680}\u{1F525}',
  '\u{1F469}\u200d\u{1F469}\u200d\u{1F467}', // a ZWJ family
  '\u05e9\u05dc\u05d5\u05dd', // Hebrew
  '\u0645\u0631\u062d\u0628\u0627', // Arabic
  '\u202eevil\u202c', // RTL override
  '\u2028\u2029',
  '\u65e5\u672c\u8a9e',
  'x'.repeat(500),
  'a?#%&+ \u00e9'.repeat(63).slice(0, 500), // 500 UTF-16 units, no pair split (all BMP)
  '\u{1F680}'.repeat(250), // 500 UTF-16 units of surrogate pairs
];

/** Ids the schema refuses, with why. Each is enqueued as line 2 after a plain one. */
const REJECTED: readonly [string, string, RegExp][] = [
  ['dot-dot-slash', '../etc/passwd', /"\/" or "\\"/],
  ['dot-dot-backslash', '..\\..\\win', /"\/" or "\\"/],
  ['dot-dot', '..', /must not be "\." or "\.\."/],
  ['a slash', 'a/b', /"\/" or "\\"/],
  ['LF', 'line\nbreak', /control characters/],
  ['CR', 'cr\rhere', /control characters/],
  ['CRLF header injection', 'x\r\nX-Injected: 1', /control characters/],
  ['NUL', 'nul\u0000byte', /control characters/],
  ['a C1 control', 'nel\u0085', /control characters/],
  ['513 characters', 'x'.repeat(513), /at most 512/],
  ['100 KB', 'x'.repeat(100_000), /at most 512/],
  ['empty', '', /must not be empty/],
];

const WF = 'wf 1?#%/x'; // a hostile workflowId too: one segment, whatever it holds
const ORG = 'org \u00fc/1?#';

/** The raw request target split as a server must: path segments first, then each decoded. */
function split(r: ReceivedRequest): { segments: string[]; query: URLSearchParams | null } {
  const at = r.path.indexOf('?');
  const rawPath = at === -1 ? r.path : r.path.slice(0, at);
  return {
    segments: rawPath.split('/').map((s) => decodeURIComponent(s)),
    query: at === -1 ? null : new URLSearchParams(r.path.slice(at + 1)),
  };
}

async function report(redis: Redis, prefix: string, id: string): Promise<ReportLine[]> {
  const out: ReportLine[] = [];
  for await (const line of streamReport(redis, prefix, id)) out.push(line);
  return out;
}

describe('hostile target ids', () => {
  const t = setupDeployment({ sandbox: { record: true }, credentials: true });

  const connection = (ref: string) => ({ baseUrl: t.sandbox.url, credentialRef: ref, timeoutMs: 5000 });
  const alloySpec = (id: string) => ({
    id,
    connection: connection('UPSHIFT_TEST_ALLOY_KEY'),
    operation: { type: 'alloy.upgradeWorkflow', workflowId: WF },
    retry: { attempts: 2, backoffMs: 1 },
  });
  const tallyfySpec = (id: string) => ({
    id,
    connection: connection('UPSHIFT_TEST_TALLYFY_KEY'),
    operation: { type: 'tallyfy.updateRun', orgId: ORG, changes: { name: 'new', tags: ['migrated'] } },
    retry: { attempts: 2, backoffMs: 1 },
  });

  it('the ids under test are what they claim (lengths, distinctness)', () => {
    expect(new Set(ACCEPTED).size).toBe(ACCEPTED.length);
    expect(ACCEPTED.filter((id) => id.length === 500)).toHaveLength(3);
    const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
    expect(ACCEPTED.every((id) => id.length <= 512 && !loneSurrogate.test(id))).toBe(true);
  });

  describe.each([
    ['alloy.upgradeWorkflow', 'userId', alloySpec],
    ['tallyfy.updateRun', 'runId', tallyfySpec],
  ] as const)('%s refuses at enqueue, naming line and field, writing nothing', (_type, field, specOf) => {
    it.each(REJECTED)('%s', async (_name, id, message) => {
      const err = await enqueueCampaign(specOf('bad'), [{ [field]: PLAIN }, { [field]: id }], t.producer).then(
        () => new Error('accepted'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InputError);
      expect(err).toMatchObject({ line: 2, field, source: 'targets' });
      expect((err as InputError).message).toMatch(message);
      expect((err as InputError).message).toContain(`field "${field}"`);
      // The message quotes no part of the id (a 100 KB id must not become a 100 KB message).
      expect((err as InputError).message.length).toBeLessThan(200);
      expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
    });
  });

  /** Enqueues one target per accepted id and runs them: the report, once every one is upgraded. */
  const upgradeAll = async (spec: Record<string, unknown>, targets: Record<string, string>[]) => {
    const { campaignId, total } = await enqueueCampaign(spec, targets, t.producer);
    expect(total).toBe(ACCEPTED.length);
    await t.startWorker({ concurrency: 8 });
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status).toMatchObject({ total: ACCEPTED.length, upgraded: ACCEPTED.length, failed: 0, skipped: 0 });
    return report(t.redis, t.prefix, campaignId);
  };

  it('alloy.upgradeWorkflow: each id reaches the platform as exactly one userId query value, nothing else changes', async () => {
    t.sandbox.load({
      alloy: {
        workflows: { [WF]: { latestVersion: 2 } },
        installs: ACCEPTED.map((userId) => ({ workflowId: WF, userId, version: 1 })),
      },
    });
    const lines = await upgradeAll(alloySpec('ids-alloy'), ACCEPTED.map((userId) => ({ userId })));
    // The report names every id exactly as given, each upgraded on its first attempt.
    expect(lines.map((l) => l.target).sort()).toEqual([...ACCEPTED].sort());
    for (const l of lines) expect(l, l.target).toMatchObject({ outcome: 'upgraded', reason: 'UPGRADED', attempts: 1 });
    // And the platform holds exactly those installs upgraded: no other user was touched.
    expect(t.sandbox.state().alloy!.installs!.every((i) => i.version === 2)).toBe(true);

    const received = t.sandbox.received!;
    expect(received).toHaveLength(ACCEPTED.length);
    const host = new URL(t.sandbox.url).host;
    const plain = received.find((r) => split(r).query?.get('userId') === PLAIN)!;
    expect(plain).toBeDefined();
    const seen: string[] = [];
    for (const r of received) {
      // Every byte of the request target is printable ASCII: no raw space, unicode, CR/LF or '#'.
      expect(r.path).toMatch(/^[\x21-\x7e]+$/);
      expect(r.path).not.toContain('#');
      const { segments, query } = split(r);
      expect(segments).toEqual(['', 'workflows', WF, 'upgrade']);
      expect([...query!.keys()]).toEqual(['userId']);
      seen.push(query!.get('userId')!);
      expect(r.method).toBe('PUT');
      expect(r.headers.host).toBe(host);
      // The same headers (names and values) as for the plain id: an id adds or changes none.
      expect(r.headers).toEqual(plain.headers);
      expect(r.body).toBe('');
    }
    expect(seen.sort()).toEqual([...ACCEPTED].sort());
  });

  it('tallyfy.updateRun: each id is exactly one path segment, no query, the same headers and body', async () => {
    t.sandbox.load({ tallyfy: { runs: ACCEPTED.map((id) => ({ orgId: ORG, id, name: 'old' })) } });
    const lines = await upgradeAll(tallyfySpec('ids-tallyfy'), ACCEPTED.map((runId) => ({ runId })));
    expect(lines.map((l) => l.target).sort()).toEqual([...ACCEPTED].sort());
    expect(t.sandbox.state().tallyfy!.runs!.every((r) => r.name === 'new')).toBe(true);

    // Each run is read before its update (the undo data: README, "Undo"), then updated.
    const received = t.sandbox.received!;
    expect(received).toHaveLength(2 * ACCEPTED.length);
    const host = new URL(t.sandbox.url).host;
    const plain = (method: string) => received.find((r) => r.method === method && split(r).segments[4] === PLAIN)!;
    expect([plain('GET'), plain('PUT')]).not.toContain(undefined);
    const seen: Record<string, string[]> = { GET: [], PUT: [] };
    for (const r of received) {
      expect(r.path).toMatch(/^[\x21-\x7e]+$/);
      expect(r.path).not.toContain('#');
      expect(r.path).not.toContain('?'); // no query at all: '?' in an id is encoded
      const { segments, query } = split(r);
      expect(query).toBeNull();
      expect(segments).toHaveLength(5);
      expect(segments.slice(0, 4)).toEqual(['', 'organizations', ORG, 'runs']);
      expect(['GET', 'PUT']).toContain(r.method);
      seen[r.method]!.push(segments[4]!);
      expect(r.headers.host).toBe(host);
      expect(r.headers).toEqual(plain(r.method).headers);
      expect(r.body).toBe(plain(r.method).body);
    }
    expect(seen.GET!.sort()).toEqual([...ACCEPTED].sort());
    expect(seen.PUT!.sort()).toEqual([...ACCEPTED].sort());
  });

  // A lone UTF-16 surrogate cannot be sent as itself. Alloy: URLSearchParams turns '\ud800x' into '\ufffdx' (%EF%BF%BD), so the call
  // addresses another user; Tallyfy: encodeURIComponent throws URIError, retried as INTERNAL_ERROR
  // until RETRIES_EXHAUSTED. It also reaches Redis as U+FFFD (UTF-8), so '\ud800x' and '\udbffx'
  // dedupe into one target: the schema refuses them at enqueue.
  it('refuses an id holding a lone surrogate at enqueue', async () => {
    for (const [spec, field] of [
      [alloySpec('lone'), 'userId'],
      [tallyfySpec('lone'), 'runId'],
    ] as const) {
      const err = await enqueueCampaign(spec, [{ [field]: PLAIN }, { [field]: '\ud800x' }], t.producer).then(
        () => new Error('accepted'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InputError);
      expect(err).toMatchObject({ line: 2, field });
      expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
    }
  });
});
