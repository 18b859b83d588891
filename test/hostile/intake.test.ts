/**
 * Intake that cannot be made slow or dirty: NDJSON lines are bounded (refused as soon as a line
 * passes `DEFAULTS.maxTargetLineBytes`, naming the source and line), and text that ends up on an
 * operator's terminal or in a limit key (campaign name, limit key values, operation ids) holds no
 * control characters. Every refusal names the line and field and leaves nothing in Redis.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enqueueSourced, readNdjsonTargets } from '../../src/producer/index.js';
import { DEFAULTS, InputError, validateSpec } from '../../src/shared/index.js';
import { deletePrefix, keysUnder, newRedis, redisUrl, testPrefix } from '../support/harness.js';

const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const MAX = DEFAULTS.maxTargetLineBytes;

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

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

const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => new Error('accepted'), (e: unknown) => e);

const spec = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  connection: { baseUrl: 'http://127.0.0.1:9', credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
  ...extra,
});

describe('NDJSON line bound', () => {
  let redis: Redis;
  let prefix: string;
  beforeEach(() => {
    redis = newRedis();
    prefix = testPrefix();
  });
  afterEach(async () => {
    await deletePrefix(redis, prefix);
    redis.disconnect();
  });

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
      enqueueSourced(validateSpec(spec('near-bound')), readNdjsonTargets(chunked(text, 65_536), 'in.ndjson'), { redis, prefix, source: 'in.ndjson' }),
    );
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ source: 'in.ndjson', line: 2, field: 'userId' });
    expect((err as Error).message).toMatch(/at most 512 characters/);
    expect(await keysUnder(redis, prefix)).toEqual([]);
  });

  it('the CLI exits 2 on a 2 MiB line, naming the file and line, and enqueues nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'upshift-intake-'));
    const specFile = join(dir, 'spec.json');
    const targets = join(dir, 'huge.ndjson');
    writeFileSync(specFile, JSON.stringify(spec('cli-huge')));
    writeFileSync(targets, `{"userId":"a"}\n{"userId":"${'y'.repeat(2 * 1024 * 1024)}"}\n`);
    const r = await run(['enqueue', specFile, '--targets', targets], { REDIS_URL: redisUrl(), UPSHIFT_PREFIX: prefix });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`upshift enqueue: ${targets}, line 2: longer than ${MAX} bytes; put one target object per line\n`);
    expect(await keysUnder(redis, prefix)).toEqual([]);
  });
});
