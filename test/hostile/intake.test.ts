/**
 * Intake that cannot be made slow or dirty: NDJSON lines are bounded (refused as soon as a line
 * passes `DEFAULTS.maxTargetLineBytes`, naming the source and line), and text that ends up on an
 * operator's terminal or in a limit key (campaign name, limit key values, operation ids) holds no
 * control characters. Every refusal names the line and field and leaves nothing in Redis.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign, enqueueSourced, readNdjsonTargets } from '../../src/producer/index.js';
import { DEFAULTS, InputError, validateSpec } from '../../src/shared/index.js';
import { AUTH, postCampaign, startTestApi } from '../api/support.js';
import { setupDeployment } from '../support/deployment.js';
import { keysUnder, redisUrl } from '../support/harness.js';
import { testConnections, testConnectionsFile } from '../support/connections.js';
import { runCli } from '../support/fleet.js';

const MAX = DEFAULTS.maxTargetLineBytes;

const run = runCli;

/** `text` as a byte stream cut every `every` bytes (through multi-byte characters too). */
function chunked(text: string, every: number): Readable {
  const bytes = Buffer.from(text);
  return Readable.from(
    (function* () {
      for (let i = 0; i < bytes.length; i += every) yield bytes.subarray(i, i + every);
    })(),
    { objectMode: false },
  );
}

async function readAll(input: Readable, source = 'in.ndjson'): Promise<{ line: number; value: unknown }[]> {
  const out: { line: number; value: unknown }[] = [];
  for await (const item of readNdjsonTargets(input, source)) out.push(item);
  return out;
}

/** The registry of every spec here: the idle platform at 127.0.0.1:9. */
const connections = testConnections('http://127.0.0.1:9');

const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => new Error('accepted'), (e: unknown) => e);

const spec = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  connection: { baseUrl: 'http://127.0.0.1:9', credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
  ...extra,
});

describe('NDJSON line bound', () => {
  const t = setupDeployment();

  it('is 1 MiB, a named default', () => {
    expect(MAX).toBe(1_048_576);
  });

  it('a line of exactly the bound (CRLF, multi-byte characters cut across chunks) parses; one byte more is refused naming the line', async () => {
    const pad = (bytes: number) => {
      const head = '{"userId":"';
      const tail = '"}';
      const euro = '\u20ac'; // 3 bytes in UTF-8, so chunk cuts fall inside characters
      const room = bytes - head.length - tail.length;
      return head + euro.repeat(Math.floor(room / 3)) + 'x'.repeat(room % 3) + tail;
    };
    const exact = pad(MAX);
    expect(Buffer.byteLength(exact)).toBe(MAX);
    const ok = await readAll(chunked(`{"userId":"a"}\r\n${exact}\r\n{"userId":"b"}`, 4099));
    expect(ok.map((l) => l.line)).toEqual([1, 2, 3]);
    expect((ok[1]!.value as { userId: string }).userId).toBe(JSON.parse(exact).userId);

    const over = pad(MAX + 1);
    const err = await failure(readAll(chunked(`{"userId":"a"}\n\n${over}\n`, 4099)));
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ source: 'in.ndjson', line: 3 });
    expect((err as Error).message).toBe(`in.ndjson, line 3: longer than ${MAX} bytes; put one target object per line`);
    // The same for a last line without a line break.
    expect(await failure(readAll(chunked(`{"userId":"a"}\n${over}`, 65_536)))).toMatchObject({ line: 2 });
  });

  it('a 0.9 MiB line is not refused for its size: it parses, and enqueue fails it on the schema (the id is too long)', async () => {
    const id = 'x'.repeat(Math.floor(0.9 * 1024 * 1024));
    const text = `{"userId":"a"}\n${JSON.stringify({ userId: id })}\n`;
    const lines = await readAll(chunked(text, 65_536));
    expect(lines.map((l) => l.line)).toEqual([1, 2]);
    const err = await failure(
      enqueueSourced(validateSpec(spec('near-bound'), 'spec', connections), readNdjsonTargets(chunked(text, 65_536), 'in.ndjson'), { redis: t.redis, prefix: t.prefix, connections, source: 'in.ndjson' }),
    );
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ source: 'in.ndjson', line: 2, field: 'userId' });
    expect((err as Error).message).toMatch(/at most 512 characters/);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it('the CLI exits 2 on a 2 MiB line, naming the file and line, and enqueues nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'upshift-intake-'));
    const specFile = join(dir, 'spec.json');
    const targets = join(dir, 'huge.ndjson');
    writeFileSync(specFile, JSON.stringify(spec('cli-huge')));
    writeFileSync(targets, `{"userId":"a"}\n{"userId":"${'y'.repeat(2 * 1024 * 1024)}"}\n`);
    const r = await run(['enqueue', specFile, '--targets', targets], { REDIS_URL: redisUrl(), UPSHIFT_PREFIX: t.prefix, UPSHIFT_CONNECTIONS: testConnectionsFile('http://127.0.0.1:9') });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`upshift enqueue: ${targets}, line 2: longer than ${MAX} bytes; put one target object per line\n`);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });
});

/** One of each kind: C0 (ESC, as in a terminal escape, and LF), DEL, and C1 (NEL, and CSI, which some terminals obey). */
const CONTROLS: readonly [string, string][] = [
  ['ESC', '\u001b]0;pwned\u0007'],
  ['LF', 'a\nb'],
  ['NUL', 'a\u0000'],
  ['DEL', 'a\u007f'],
  ['NEL (C1)', 'a\u0085'],
  ['CSI (C1)', '\u009b2J'],
];

describe('control characters are refused where they would reach a terminal or a limit key', () => {
  const t = setupDeployment();

  const refusal = async (rawSpec: unknown, targets: unknown[]): Promise<InputError> => {
    const err = await failure(enqueueCampaign(rawSpec, targets, { redis: t.redis, prefix: t.prefix, connections }));
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/control characters/);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
    return err as InputError;
  };

  it.each(CONTROLS)('a campaign name with %s, naming the field', async (_kind, bad) => {
    const err = await refusal(spec('ctl-name', { name: `Move to v3 ${bad}` }), [{ userId: 'a' }]);
    expect(err).toMatchObject({ source: 'spec', field: 'name' });
  });

  it.each(CONTROLS)('an operation id with %s, naming the field', async (_kind, bad) => {
    const err = await refusal({ ...spec('ctl-op'), operation: { type: 'alloy.upgradeWorkflow', workflowId: `wf${bad}` } }, [{ userId: 'a' }]);
    expect(err).toMatchObject({ source: 'spec', field: 'operation.workflowId' });
  });

  it.each(CONTROLS)('a limit key value from ${target.x} with %s, naming the line and limits[i].key', async (_kind, bad) => {
    const limits = [
      { key: 'all', concurrency: 10 },
      { key: 'tenant-${target.tenant}', concurrency: 2 },
    ];
    const err = await refusal(spec('ctl-key', { limits }), [
      { userId: 'a', tenant: 'acme' },
      { userId: 'b', tenant: 'acme' },
      { userId: 'c', tenant: `evil${bad}` },
    ]);
    expect(err).toMatchObject({ source: 'targets', line: 3, field: 'limits[1].key' });
  });

  it('a limit key template with a control character, naming the field', async () => {
    const err = await refusal(spec('ctl-tpl', { limits: [{ key: 'tenant\u001b[2J${target.tenant}', concurrency: 2 }] }), [{ userId: 'a', tenant: 'x' }]);
    expect(err).toMatchObject({ source: 'spec', field: 'limits[0].key' });
  });

  it('campaign ids and target ids refuse them already (C1 included)', async () => {
    for (const [, bad] of CONTROLS) {
      expect(await failure(enqueueCampaign(spec(`id${bad}`), [{ userId: 'a' }], { redis: t.redis, prefix: t.prefix, connections }))).toMatchObject({ field: 'id' });
      expect(await failure(enqueueCampaign(spec('ctl-target'), [{ userId: 'a' }, { userId: `b${bad}` }], { redis: t.redis, prefix: t.prefix, connections }))).toMatchObject({
        line: 2,
        field: 'userId',
      });
    }
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it('over HTTP: 400 naming the streamed line and field', async () => {
    const api = await startTestApi({ connections });
    try {
      const body = [
        JSON.stringify(spec('ctl-http', { limits: [{ key: '${target.tenant}', concurrency: 1 }] })),
        JSON.stringify({ userId: 'a', tenant: 'acme' }),
        JSON.stringify({ userId: 'b', tenant: 'x\u009b31m' }),
      ].join('\n');
      const res = await api.app.inject({ method: 'POST', url: '/campaigns', headers: { ...AUTH, 'content-type': 'application/x-ndjson' }, payload: body });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: 'invalid_input', source: 'request body', line: 3, field: 'limits[0].key' });
      const named = await postCampaign(api.app, spec('ctl-http-name', { name: 'x\u001b[2Jy', targets: [{ userId: 'a' }] }));
      expect(named.statusCode).toBe(400);
      expect(named.json()).toMatchObject({ error: 'invalid_input', field: 'name' });
    } finally {
      await api.close();
    }
  });
});
