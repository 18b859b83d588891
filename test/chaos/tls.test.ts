import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { beforeEach, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { eventsChannel, readStatus } from '../../src/shared/index.js';
import { freePort } from '../../scripts/lib/private-redis.js';
import { alloyFleet } from '../support/fleet.js';
import { testPrefix } from '../support/harness.js';
import { connectionsFile, testConnections } from '../support/connections.js';
import { setupDeployment } from '../support/deployment.js';
import { recordFigures } from './figures.js';

const PASSWORD = 'tls-redis-pw-7Hq2';

describe('rediss:// (TLS) with a password', () => {
  const t = setupDeployment({ sandbox: {} });
  let dir: string;

  beforeEach(() => {
    dir = t.tempDir('upshift-tls-');
  });

  it('workers and the producer work over TLS; the password never reaches a log', async () => {
    // A self-signed certificate for 127.0.0.1 (Debian's openssl; CI installs it when missing).
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const port = await freePort();
    const server = spawn(
      'redis-server',
      ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', cert, '--tls-auth-clients', 'no', '--requirepass', PASSWORD, '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: 'ignore' },
    );
    const url = `rediss://:${PASSWORD}@127.0.0.1:${port}`;
    const redis = new Redis(url, { tls: { ca: readFileSync(cert) }, maxRetriesPerRequest: null });
    redis.on('error', () => undefined);
    const prefix = testPrefix();
    try {
      await redis.ping();
      const fleet = alloyFleet(50);
      t.sandbox.load(fleet.fixtures);
      // The worker trusts the test CA the standard Node way; REDIS_URL is used as given.
      const connections = testConnections(t.sandbox.url);
      const worker = await t.spawnWorker(['--concurrency', '5'], { REDIS_URL: url, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: connectionsFile(connections), LOG_LEVEL: 'debug', NODE_EXTRA_CA_CERTS: cert });
      const sub = new Redis(url, { tls: { ca: readFileSync(cert) } });
      const ended = new Promise<void>((resolve) =>
        sub.on('message', (_c, m: string) => (JSON.parse(m) as { ended?: boolean }).ended && resolve()),
      );
      await sub.subscribe(eventsChannel(prefix));
      await enqueueCampaign(
        { id: 'tls', connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' } },
        fleet.targets,
        { redis, prefix, connections },
      );
      await ended;
      sub.disconnect();
      expect(await readStatus(redis, prefix, 'tls')).toMatchObject({ state: 'completed', upgraded: 50 });
      worker.proc.kill('SIGTERM');
      expect((await worker.exited).code).toBe(0);
      expect(worker.stderr()).not.toContain(PASSWORD);
      recordFigures('tls', { redisUrl: 'rediss:// with a password', targets: 50, upgraded: 50, passwordInLogs: 'no' });
    } finally {
      redis.disconnect();
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
  });
});
