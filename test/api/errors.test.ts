import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorAnswer } from '../../src/producer/api/errors.js';
import { enqueueCampaign } from '../../src/producer/index.js';
import { schedulerKeys, type ConnectionRegistry } from '../../src/shared/index.js';
import { connectionsFile, testConnections } from '../support/connections.js';
import { runCli, setCredentialEnv } from '../support/fleet.js';
import { redisUrl } from '../support/harness.js';
import { AUTH, startTestApi, type TestApi } from './support.js';

const JSON_BODY = { ...AUTH, 'content-type': 'application/json' };

/**
 * "Another producer is staging this campaign" is Upshift's own refusal (catalogue code
 * STAGING_IN_PROGRESS, 409); a platform refusing discovery's search (a Conductor 400, reason
 * INVALID_REQUEST) is the platform's, answered as PLATFORM_ERROR (502) with the reason. The two
 * once shared the platform's INVALID_REQUEST, so a Conductor 400 reached API callers as 409.
 */
describe('error answers from the catalogue', () => {
  let platform: Server;
  let platformUrl: string;
  let connections: ConnectionRegistry;
  let api: TestApi;
  let dir: string;

  beforeAll(async () => {
    setCredentialEnv();
    // A Conductor that refuses every search as a bad request.
    platform = createServer((req, res) => {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 400, message: 'Invalid query syntax' }));
    });
    await new Promise<void>((resolve) => platform.listen(0, '127.0.0.1', resolve));
    platformUrl = `http://127.0.0.1:${(platform.address() as { port: number }).port}`;
    connections = testConnections(platformUrl);
    dir = mkdtempSync(join(tmpdir(), 'upshift-errors-'));
  });
  afterAll(async () => {
    await new Promise((resolve) => platform.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    api = await startTestApi({ connections });
  });
  afterEach(() => api.close());

  const discovery = (id: string) => ({
    id,
    connection: 'UPSHIFT_TEST_CONDUCTOR_KEY',
    operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 },
    targets: { discover: { workflowName: 'flow' } },
  });

  it('a campaign another producer is staging is 409 STAGING_IN_PROGRESS', async () => {
    await api.redis.zadd(schedulerKeys(api.prefix).staging, Date.now() + 60_000, 'busy');
    const spec = { id: 'busy', connection: 'UPSHIFT_TEST_ALLOY_KEY', operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' }, targets: [{ userId: 'u1' }] };
    const res = await api.app.inject({ method: 'POST', url: '/campaigns', headers: JSON_BODY, payload: JSON.stringify(spec) });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({
      error: 'conflict',
      code: 'STAGING_IN_PROGRESS',
      message: 'campaign "busy" is being enqueued by another producer right now; wait for it or choose another id',
    });
  });

  it("a platform 400 to discovery's search is PLATFORM_ERROR (502, reason INVALID_REQUEST), not 409", async () => {
    // Over HTTP the search runs behind the 202; the producer that pages in the foreground (the
    // CLI, a library caller) meets the refusal itself, and the API answers the same error so.
    const err = await enqueueCampaign(discovery('refused'), undefined, { redis: api.redis, prefix: api.prefix, connections }).then(
      () => expect.unreachable('the search was refused'),
      (e: unknown) => e,
    );
    const answer = errorAnswer(err);
    expect(answer.status).toBe(502);
    expect(answer.body).toMatchObject({ error: 'platform_error', code: 'PLATFORM_ERROR', reason: 'INVALID_REQUEST', message: expect.stringContaining('HTTP 400') });
  });

  it('the CLI exits 1 on a platform 400 during discovery, naming it as the platform\'s answer, not as an unexpected error', async () => {
    const specPath = join(dir, 'discovery.json');
    writeFileSync(specPath, JSON.stringify(discovery('cli-refused')));
    const env = { REDIS_URL: redisUrl(), UPSHIFT_PREFIX: api.prefix, UPSHIFT_CONNECTIONS: connectionsFile(connections) };
    const r = await runCli(['enqueue', specPath], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^upshift enqueue: conductor search: HTTP 400 .*Invalid query syntax/);
    expect(r.stderr).not.toContain('unexpected error');
  });
});
