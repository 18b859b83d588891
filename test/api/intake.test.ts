/**
 * The API's intake under hostile uploads: a streamed line over the line bound is 413 naming the
 * line, read no further than the bound; a stalled upload is cut by the connection timeout; and
 * `/healthz` keeps answering while either happens. Limits and timeouts come from DEFAULTS, the
 * environment and `upshift serve` flags.
 */
import { spawn } from 'node:child_process';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, InputError, loadConfig } from '../../src/shared/index.js';
import { AUTH, campaignData, startTestApi, until, type TestApi } from './support.js';
import { testConnections } from '../support/connections.js';

const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const NDJSON = { ...AUTH, 'content-type': 'application/x-ndjson' };
const MAX = DEFAULTS.maxTargetLineBytes;
const CHUNK = 64 * 1024;

const SPEC_LINE = JSON.stringify({
  id: 'hostile',
  connection: { baseUrl: 'http://127.0.0.1:9', credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
});

/** `head`, then an endless line of `x` (up to `cap` bytes), generated as it is read. */
function endlessLine(head: string, cap: number): { body: Readable; pulled: () => number } {
  let pulled = 0;
  const filler = Buffer.alloc(CHUNK, 'x');
  function* chunks() {
    pulled += head.length;
    yield Buffer.from(head);
    while (pulled < cap) {
      pulled += CHUNK;
      yield filler;
    }
  }
  return { body: Readable.from(chunks(), { objectMode: false }), pulled: () => pulled };
}

/** Resolves with the answer's status and body; rejects when the connection drops without one. */
function answerOf(req: ClientRequest): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    req.on('response', (res: IncomingMessage) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe('hostile NDJSON uploads', () => {
  let api: TestApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  it('a line over the bound is 413 with a JSON body naming the line; the rest is never read and nothing is staged', async () => {
    api = await startTestApi({ connections: testConnections('http://127.0.0.1:9') });
    for (const [head, line] of [
      [`${SPEC_LINE}\n{"userId":"a"}\n\n{"userId":"`, 4],
      ['{"id":"', 1],
    ] as const) {
      const { body, pulled } = endlessLine(head, 32 * 1024 * 1024);
      const res = await api.app.inject({ method: 'POST', url: '/campaigns', headers: NDJSON, payload: body });
      expect(res.statusCode).toBe(413);
      expect(res.headers.connection).toBe('close');
      expect(res.json()).toEqual({
        error: 'payload_too_large',
        message: `request body, line ${line}: longer than ${MAX} bytes; put one target object per line`,
        source: 'request body',
        line,
      });
      expect(pulled()).toBeLessThan(2 * MAX);
    }
    expect(await campaignData(api.redis, api.prefix)).toEqual([]);
  });

  it('/healthz answers while a huge upload is refused and while a stalled one is cut by the connection timeout', async () => {
    api = await startTestApi({ connectionTimeoutMs: 300, connections: testConnections('http://127.0.0.1:9') });
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = api.app.server.address() as AddressInfo;
    const post = () => httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/campaigns', headers: NDJSON });
    const healthz = () => answerOf(httpRequest({ host: '127.0.0.1', port, path: '/healthz' }).end());

    // Huge: one endless line written as fast as the server takes it, up to 64 MiB.
    const huge = post();
    const hugeAnswer = answerOf(huge);
    let answered = false;
    void hugeAnswer.finally(() => (answered = true)).catch(() => undefined);
    let sent = 0;
    const filler = Buffer.alloc(CHUNK, 'x');
    const pump = () => {
      while (!answered && !huge.destroyed && sent < 64 * 1024 * 1024) {
        sent += CHUNK;
        if (!huge.write(filler)) return void huge.once('drain', pump);
      }
    };
    huge.write(`${SPEC_LINE}\n{"userId":"`, pump);
    huge.on('error', () => undefined);
    const duringHuge = await healthz();
    expect(duringHuge).toEqual({ status: 200, body: '{"status":"ok"}' });
    const refused = await hugeAnswer;
    expect(refused.status).toBe(413);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'payload_too_large', line: 2 });
    huge.destroy();
    // Refused long before the client would have finished sending.
    expect(sent).toBeLessThan(64 * 1024 * 1024);

    // Stalled: the spec line and half a target, then nothing. The server hangs up on its own.
    const stalled = post();
    const cut = new Promise<string>((resolve) => {
      stalled.on('response', () => resolve('answered'));
      stalled.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    await new Promise<void>((resolve) => stalled.write(`${SPEC_LINE}\n{"userId":"a"}\n{"userId":`, () => resolve()));
    const duringStall = await healthz();
    expect(duringStall.status).toBe(200);
    expect(await cut).toBe('ECONNRESET');
    // The cut upload fails like any other: what it had staged is discarded.
    const redis = api.redis;
    const prefix = api.prefix;
    await until(() => campaignData(redis, prefix), (keys) => keys.length === 0, 'staging of the cut upload discarded');
  });
});

describe('API limits and timeouts: defaults, environment, flags', () => {
  it('have defaults with their units in the names', () => {
    expect(DEFAULTS).toMatchObject({
      apiBodyLimitBytes: 16 * 1024 * 1024,
      apiStreamLimitBytes: 1024 * 1024 * 1024,
      apiRequestTimeoutMs: 300_000,
      apiConnectionTimeoutMs: 60_000,
    });
    expect(loadConfig({})).toMatchObject({
      apiBodyLimitBytes: DEFAULTS.apiBodyLimitBytes,
      apiStreamLimitBytes: DEFAULTS.apiStreamLimitBytes,
      apiRequestTimeoutMs: DEFAULTS.apiRequestTimeoutMs,
      apiConnectionTimeoutMs: DEFAULTS.apiConnectionTimeoutMs,
    });
  });

  it('are read from UPSHIFT_API_* variables; a bad value names the variable', () => {
    expect(
      loadConfig({
        UPSHIFT_API_BODY_LIMIT_BYTES: '65536',
        UPSHIFT_API_STREAM_LIMIT_BYTES: '1048576',
        UPSHIFT_API_REQUEST_TIMEOUT_MS: '30000',
        UPSHIFT_API_CONNECTION_TIMEOUT_MS: '5000',
      }),
    ).toMatchObject({ apiBodyLimitBytes: 65_536, apiStreamLimitBytes: 1_048_576, apiRequestTimeoutMs: 30_000, apiConnectionTimeoutMs: 5000 });
    expect(() => loadConfig({ UPSHIFT_API_BODY_LIMIT_BYTES: '16M' })).toThrow(InputError);
    expect(() => loadConfig({ UPSHIFT_API_CONNECTION_TIMEOUT_MS: '-1' })).toThrow(/UPSHIFT_API_CONNECTION_TIMEOUT_MS/);
  });

  it('upshift serve takes --request-timeout-ms and --connection-timeout-ms, and refuses bad ones naming the flag (exit 2)', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [cli, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const help = await run(['--help']);
    expect(help.stdout).toContain('--request-timeout-ms');
    expect(help.stdout).toContain('--connection-timeout-ms');
    const bad = await run(['--connection-timeout-ms', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('field "--connection-timeout-ms"');
  });
});
