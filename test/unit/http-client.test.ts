import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient, LightSignal, type HttpRequest } from '../../src/shared/index.js';

/**
 * What HttpClient's own undici handler owns (http.ts `CallHandler`): the answer as it came,
 * the size bound to the byte, and a run's lease signal ending a call before and during it.
 * The hostile answers (test/hostile/answers.test.ts) and the send gate (pause-gate.test.ts)
 * are tested where they are.
 */
describe('HttpClient', () => {
  let server: Server;
  let base: string;
  const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
  /** The route's own answer; `hold` never answers, and says when its request arrived. */
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {};
  let arrived: (() => void) | undefined;
  let closedEarly = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        const route = routes[req.url!.split('?')[0]!];
        if (route) route(req, res);
        else res.end('{}');
      });
    });
    routes['/hold'] = (_req, res) => {
      res.on('close', () => {
        if (!res.writableEnded) closedEarly++;
      });
      arrived?.();
    };
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const endpoint = () => ({ baseUrl: base, privateNetwork: true });

  it('sends method, path, query, headers and JSON body, and returns status, headers and text as they came', async () => {
    routes['/x/a%2Fb'] = (_req, res) => {
      res.setHeader('x-two', ['1', '2']);
      res.setHeader('retry-after', '3');
      res.statusCode = 409;
      res.end('é conflict');
    };
    const http = new HttpClient();
    const req: HttpRequest = { method: 'PATCH', segments: ['x', 'a/b'], query: { q: 'a b' }, headers: { authorization: 'bearer k' }, json: { v: 'é' } };
    const res = await http.send(endpoint(), req, 2000);
    expect(res).toMatchObject({ status: 409, text: 'é conflict', truncated: false });
    expect(res.headers['x-two']).toEqual(['1', '2']);
    expect(res.headers['retry-after']).toBe('3');
    const got = seen.at(-1)!;
    expect(got).toMatchObject({ method: 'PATCH', url: '/x/a%2Fb?q=a+b', body: '{"v":"é"}' });
    expect(got.headers).toMatchObject({ authorization: 'bearer k', 'content-type': 'application/json' });
    await http.close();
  });

  it('keeps a body of exactly the bound whole, and one byte more cut at the bound', async () => {
    routes['/size'] = (req, res) => res.end('y'.repeat(Number(new URL(req.url!, base).searchParams.get('n'))));
    const http = new HttpClient({ maxResponseBytes: 1000 });
    const at = await http.send(endpoint(), { method: 'GET', segments: ['size'], query: { n: '1000' }, headers: {} }, 2000);
    expect(at).toMatchObject({ status: 200, truncated: false });
    expect(at.text).toHaveLength(1000);
    const over = await http.send(endpoint(), { method: 'GET', segments: ['size'], query: { n: '1001' }, headers: {} }, 2000);
    expect(over).toMatchObject({ status: 200, truncated: true });
    expect(over.text).toHaveLength(1000);
    await http.close();
  });

  it('ends a call at once with the lease signal’s reason, before it is sent and while it waits for its answer', async () => {
    const http = new HttpClient();
    const lost = new Error('lease lost');
    const already = new LightSignal();
    already.abort(lost);
    const before = seen.length;
    await expect(http.send(endpoint(), { method: 'PUT', segments: ['hold'], headers: {} }, 60_000, already)).rejects.toBe(lost);

    const signal = new LightSignal();
    const waiting = new Promise<void>((resolve) => (arrived = resolve));
    const call = http.send(endpoint(), { method: 'PUT', segments: ['hold'], headers: {} }, 60_000, signal);
    await waiting;
    expect(seen.length).toBe(before + 1); // only the second call reached the server
    signal.abort(lost);
    await expect(call).rejects.toBe(lost);
    // The socket goes with the call: the server sees its answer's connection closed.
    await expect.poll(() => closedEarly).toBe(1);
    await http.close();
  });

  it('ends a call with no answer with a TimeoutError', async () => {
    const http = new HttpClient();
    const waiting = new Promise<void>((resolve) => (arrived = resolve));
    const call = http.send(endpoint(), { method: 'GET', segments: ['hold'], headers: {} }, 150);
    await waiting;
    await expect(call).rejects.toMatchObject({ name: 'TimeoutError' });
    await http.close();
  });
  it('a signal aborted without a reason still ends the call before anything is sent', async () => {
    const http = new HttpClient();
    const before = seen.length;
    const signal = new LightSignal();
    signal.abort(undefined);
    await expect(http.send(endpoint(), { method: 'PUT', segments: ['x'], headers: {} }, 2000, signal)).rejects.toMatchObject({ name: 'AbortError' });
    // A later call on the same client goes out: the refused one never did.
    expect((await http.send(endpoint(), { method: 'GET', segments: ['x'], headers: {} }, 2000)).status).toBe(200);
    expect(seen.length).toBe(before + 1);
    expect(seen.at(-1)!.method).toBe('GET');
    await http.close();
  });

  it('rejects, never throws at the caller, a call it cannot make (a bad base URL, a header undici will not send)', async () => {
    const http = new HttpClient();
    let call: Promise<unknown> | undefined;
    expect(() => (call = http.send({ baseUrl: 'not a url', privateNetwork: true }, { method: 'GET', segments: ['x'], headers: {} }, 2000))).not.toThrow();
    await expect(call).rejects.toThrow();
    expect(() => (call = http.send(endpoint(), { method: 'GET', segments: ['x'], headers: { 'x-bad': 'a\r\nx-injected: 1' } }, 2000))).not.toThrow();
    await expect(call).rejects.toThrow();
    expect(seen.some((r) => 'x-injected' in r.headers)).toBe(false);
    await http.close();
  });
});
