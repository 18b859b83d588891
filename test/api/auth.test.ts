import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, TOKEN_COOKIE } from '../../src/producer/api/index.js';
import { createLogger, InputError } from '../../src/shared/index.js';
import { newRedis, redisUrl, testPrefix } from '../support/harness.js';
import { connectionsFile, noConnections } from '../support/connections.js';
import { spawnApi } from '../support/deployment.js';
import { AUTH, startTestApi, TOKEN, type TestApi } from './support.js';

const cookie = (value: string) => ({ cookie: `theme=dark; ${TOKEN_COOKIE}=${encodeURIComponent(value)}` });

describe('API authentication', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi();
  });
  afterAll(() => api.close());

  const get = (url: string, headers: Record<string, string> = {}) => api.app.inject({ method: 'GET', url, headers });

  it('refuses every protected route, and unknown URLs, without a token', async () => {
    for (const url of ['/campaigns', '/campaigns/x', '/campaigns/x/report', '/metrics', '/openapi.json', '/docs', '/admin/queues', '/nothing-here']) {
      const res = await get(url);
      expect(res.statusCode, url).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="upshift"');
      expect(res.json()).toMatchObject({ error: 'unauthorized', message: expect.stringContaining('Authorization: Bearer') });
    }
    const post = await api.app.inject({ method: 'POST', url: '/campaigns/x/pause' });
    expect(post.statusCode).toBe(401);
  });

  it('refuses a wrong token, whatever its length, and a malformed header', async () => {
    for (const authorization of [`Bearer ${TOKEN.slice(0, -1)}x`, `Bearer ${TOKEN}x`, 'Bearer short', `Basic ${TOKEN}`, TOKEN, 'Bearer ']) {
      const res = await get('/campaigns', { authorization });
      expect(res.statusCode, authorization).toBe(401);
      expect(res.json().error).toBe('unauthorized');
    }
  });

  it('accepts the right token in the header (any case of "Bearer")', async () => {
    expect((await get('/campaigns', AUTH)).statusCode).toBe(200);
    expect((await get('/campaigns', { authorization: `bearer ${TOKEN}` })).statusCode).toBe(200);
    expect((await get('/campaigns', AUTH)).json()).toEqual({ campaigns: [] });
  });

  it('accepts the token from the dashboard cookie; a wrong cookie, or a wrong header beside a right cookie, is refused', async () => {
    expect((await get('/campaigns', cookie(TOKEN))).statusCode).toBe(200);
    expect((await get('/campaigns', cookie(`${TOKEN}-nope`))).statusCode).toBe(401);
    expect((await get('/campaigns', { ...cookie(TOKEN), authorization: 'Bearer wrong-token-0123456789' })).statusCode).toBe(401);
  });

  it('a state-changing request authenticated by the cookie must come from this origin', async () => {
    const post = (headers: Record<string, string>) => api.app.inject({ method: 'POST', url: '/campaigns/none/pause', headers });
    const foreign = await post({ ...cookie(TOKEN), host: 'localhost:3000', origin: 'https://evil.example' });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().error).toBe('forbidden');
    // Same origin, or no Origin at all (SameSite=Strict keeps the cookie off cross-site requests): the route runs.
    expect((await post({ ...cookie(TOKEN), host: 'localhost:3000', origin: 'http://localhost:3000' })).statusCode).toBe(404);
    expect((await post(cookie(TOKEN))).statusCode).toBe(404);
    // A bearer token is not a browser's ambient credential: no origin check.
    expect((await post({ ...AUTH, host: 'localhost:3000', origin: 'https://evil.example' })).statusCode).toBe(404);
  });

  it('serves health and the dashboard shell without a token', async () => {
    for (const url of ['/healthz', '/readyz', '/', '/dashboard/app.js', '/dashboard/style.css']) {
      expect((await get(url)).statusCode, url).toBe(200);
    }
    const page = await get('/');
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('/dashboard/app.js');
  });

  it('never logs the token: not from requests, and redacted if a header ever reaches a log line', async () => {
    await get('/campaigns', AUTH);
    await get('/campaigns', cookie(TOKEN));
    await get('/nothing-here', AUTH);
    await api.app.inject({ method: 'POST', url: '/campaigns', headers: { ...AUTH, 'content-type': 'application/json' }, payload: '{' });
    api.app.log.info({ req: { headers: { authorization: `Bearer ${TOKEN}`, cookie: `${TOKEN_COOKIE}=${TOKEN}` } } }, 'probe');
    api.app.log.info({ headers: { authorization: `Bearer ${TOKEN}`, cookie: `${TOKEN_COOKIE}=${TOKEN}` } }, 'probe');
    const logs = api.logs();
    expect(logs.match(/"msg":"probe"/g)).toHaveLength(2);
    expect(logs).toContain('[redacted]');
    expect(logs).not.toContain(TOKEN);
  });
});

describe('starting without a token', () => {
  it('buildApi refuses, naming UPSHIFT_API_TOKEN and --insecure-no-auth; a short token is refused too', async () => {
    const redis = newRedis();
    const log = createLogger('silent');
    const connections = noConnections();
    try {
      for (const apiToken of [undefined, '']) {
        const err = await buildApi({ redis, prefix: testPrefix(), log, apiToken, connections }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InputError);
        expect((err as Error).message).toMatch(/UPSHIFT_API_TOKEN.*--insecure-no-auth/);
      }
      const short = await buildApi({ redis, prefix: testPrefix(), log, apiToken: 'short', connections }).catch((e: unknown) => e);
      expect(short).toBeInstanceOf(InputError);
      expect((short as Error).message).toContain('at least 16 characters');
    } finally {
      redis.disconnect();
    }
  });

  it('with insecureNoAuth it serves every route without a token and warns in the log', async () => {
    const api = await startTestApi({ apiToken: undefined, insecureNoAuth: true });
    try {
      expect((await api.app.inject({ method: 'GET', url: '/campaigns' })).statusCode).toBe(200);
      expect((await api.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
      expect(api.logs()).toMatch(/"level":40.*WITHOUT authentication/);
    } finally {
      await api.close();
    }
  });

  const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
  const env = () => {
    const { UPSHIFT_API_TOKEN: _unset, ...rest } = process.env;
    return { ...rest, REDIS_URL: redisUrl(), UPSHIFT_PREFIX: testPrefix(), LOG_LEVEL: 'warn', UPSHIFT_CONNECTIONS: connectionsFile(noConnections()) };
  };

  it('upshift serve exits 2 with one line naming UPSHIFT_API_TOKEN and --insecure-no-auth', async () => {
    const proc = spawn(process.execPath, [cli, 'serve', '--port', '0'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(proc, 'exit')) as [number];
    expect(code).toBe(2);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^upshift serve: .*UPSHIFT_API_TOKEN.*--insecure-no-auth/);
  });

  it('upshift serve --insecure-no-auth starts, warns, serves, and exits 0 on SIGTERM', async () => {
    const api = await spawnApi(['--port', '0', '--insecure-no-auth'], env());
    try {
      const res = await fetch(`${api.url}/campaigns`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ campaigns: [] });
      expect(api.stderr()).toContain('WITHOUT authentication');
    } finally {
      api.proc.kill('SIGTERM');
    }
    const [code] = await api.exited;
    expect(code).toBe(0);
  });
});
