import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign, pauseCampaign } from '../../src/producer/index.js';
import {
  createApiMetrics,
  createLogger,
  eventsChannel,
  loadScripts,
  operationFor,
  TARGET_QUEUE,
  type TargetJobData,
} from '../../src/shared/index.js';
import { Dispatcher } from '../../src/worker/dispatcher.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet, nectedGraph } from '../support/fleet.js';
import { newRedis, redisUrl, waitForCompletion } from '../support/harness.js';
import { testConnections, testConnectionsFile } from '../support/connections.js';

const log = createLogger('silent');
const cliPath = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The Prometheus text format, as far as prom-client writes it. */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `match`. */
function total(samples: Sample[], name: string, match: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

function series(samples: Sample[], name: string): Sample[] {
  return samples.filter((s) => s.name === name);
}

async function scrape(port: number): Promise<{ status: number; type: string | null; samples: Sample[]; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), samples: parse(text), text };
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

describe('metrics', () => {
  const t = setupDeployment({ credentials: true });

  it('worker /metrics: counters equal the status hash, call latency matches what the platform saw, /healthz answers', async () => {
    const sandbox = await t.startSandbox({ seed: 3, failRate: 0.1, throttleRate: 0.06, resetRate: 0.04, conflictRate: 0.3, retryAfterS: 1 });
    const connections = testConnections(sandbox.url);
    const n = 16;
    sandbox.load({ nected: { workflows: Array.from({ length: n }, (_, i) => ({ entityId: `w-${i}`, graph: nectedGraph(`wf ${i}`) })) } });
    // Two targets the platform does not know: failed NOT_FOUND, so the outcome counters see two reasons.
    const targets = [...Array.from({ length: n }, (_, i) => ({ entityId: `w-${i}` })), { entityId: 'ghost-1' }, { entityId: 'ghost-2' }];
    const { campaignId } = await enqueueCampaign(
      {
        id: 'observed',
        connection: { baseUrl: sandbox.url, credentialRef: 'UPSHIFT_TEST_NECTED_KEY', timeoutMs: 5000 },
        operation: { type: 'nected.updateWorkflow', conflictRetries: 20, patch: [{ op: 'replace', path: '/settings/auditIO', value: true }] },
        retry: { attempts: 20, backoffMs: 1 },
      },
      targets,
      { redis: t.redis, prefix: t.prefix, connections },
    );
    const w = await t.startWorker({ connections, concurrency: 4, metricsPort: 0 });
    const port = w.metricsPort!;
    expect(port).toBeGreaterThan(0);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);

    const status = await waitForCompletion(t.prefix, campaignId);
    const stats = sandbox.stats();
    const { status: code, type, samples } = await scrape(port);
    expect(code).toBe(200);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    const op = { operation: 'nected.updateWorkflow' };

    // The faults happened, so the equalities below compare real counts.
    expect(status).toMatchObject({ total: n + 2, upgraded: n, failed: 2, skipped: 0 });
    expect(status.retries).toBeGreaterThan(0);
    expect(status.conflicts).toBeGreaterThan(0);
    expect(status.retryAfterWaits).toBeGreaterThan(0);

    for (const outcome of ['upgraded', 'skipped', 'failed'] as const) {
      expect(total(samples, 'upshift_worker_outcomes_total', { ...op, outcome })).toBe(status[outcome]);
    }
    expect(total(samples, 'upshift_worker_outcomes_total', { ...op, outcome: 'upgraded', reason: 'UPGRADED' })).toBe(n);
    expect(total(samples, 'upshift_worker_outcomes_total', { ...op, outcome: 'failed', reason: 'NOT_FOUND' })).toBe(status.reasons.NOT_FOUND);
    expect(total(samples, 'upshift_worker_retries_total', op)).toBe(status.retries);
    expect(total(samples, 'upshift_worker_conflicts_total', op)).toBe(status.conflicts);
    expect(total(samples, 'upshift_worker_retry_after_pauses_total', op)).toBe(status.retryAfterWaits);
    expect(total(samples, 'upshift_worker_retry_after_pause_seconds_total', op)).toBeCloseTo(status.retryAfterWaitMs / 1000, 6);
    expect(total(samples, 'upshift_worker_claims_total', { ...op, result: 'claimed' })).toBeGreaterThanOrEqual(n + 2);

    // Every request the platform received is one observation, under the status it answered
    // with; a reset connection (no answer) is "error".
    const count = 'upshift_worker_platform_call_duration_seconds_count';
    expect(total(samples, count, op)).toBe(stats.requests);
    for (const [answered, times] of Object.entries(stats.byStatus)) expect(total(samples, count, { ...op, status: answered })).toBe(times);
    expect(total(samples, count, { ...op, status: 'error' })).toBe(stats.faults.resets);
    expect(total(samples, count, { ...op, method: 'PATCH', status: '409' })).toBe(stats.faults.conflicts);
    const infBuckets = total(samples, 'upshift_worker_platform_call_duration_seconds_bucket', { ...op, le: '+Inf' });
    expect(infBuckets).toBe(stats.requests);
    expect(total(samples, 'upshift_worker_platform_call_duration_seconds_sum', op)).toBeGreaterThan(0);
    // Buckets are cumulative: within each series they never decrease, and +Inf is the count.
    const buckets = series(samples, 'upshift_worker_platform_call_duration_seconds_bucket');
    const bySeries = new Map<string, Sample[]>();
    for (const b of buckets) {
      const key = `${b.labels.method} ${b.labels.status}`;
      bySeries.set(key, [...(bySeries.get(key) ?? []), b]);
    }
    expect(bySeries.size).toBeGreaterThanOrEqual(Object.keys(stats.byStatus).length);
    for (const [key, list] of bySeries) {
      const values = list.map((b) => b.value);
      expect(values, key).toEqual([...values].sort((x, y) => x - y));
      const [method, answered] = key.split(' ');
      expect(values.at(-1), key).toBe(total(samples, count, { ...op, method: method!, status: answered! }));
    }

    // A second scrape reports the same totals: nothing is counted twice.
    const again = (await scrape(port)).samples;
    for (const name of ['upshift_worker_outcomes_total', 'upshift_worker_retries_total', 'upshift_worker_claims_total', count]) {
      expect(total(again, name), name).toBe(total(samples, name));
    }

    // The fleet gauges, read from Redis by the worker too.
    expect(total(samples, 'upshift_metrics_redis_up')).toBe(1);
    expect(total(samples, 'upshift_campaigns', { state: 'completed' })).toBe(1);
    expect(total(samples, 'upshift_campaigns', { state: 'running' })).toBe(0);
    expect(total(samples, 'upshift_campaign_targets_pending')).toBe(0);
    expect(total(samples, 'upshift_limit_keys_in_use')).toBe(0);
    // Process metrics come with a served endpoint.
    expect(series(samples, 'process_cpu_user_seconds_total')).toHaveLength(1);

    await w.close();
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('fleet gauges (createApiMetrics): campaigns by state, pending of a paused campaign, slots per key with "other", a Retry-After pause, queue depth', async () => {
    const scripts = loadScripts(t.redis, t.prefix);
    const leaseMs = 60_000;
    // Campaign L: limit key per tenant, 2 slots each; tenants a (3 targets), b (3), c (1).
    const tenants = ['a', 'a', 'a', 'b', 'b', 'b', 'c'];
    const limited = alloyFleet(tenants.length).targets.map((t, i) => ({ ...t, tenant: tenants[i]! }));
    const connection = { baseUrl: 'http://127.0.0.1:9', credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' };
    const connections = testConnections(connection.baseUrl);
    await enqueueCampaign(
      { id: 'limited', connection, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' }, limits: [{ key: 'tenant-${target.tenant}', concurrency: 2 }] },
      limited,
      { redis: t.redis, prefix: t.prefix, connections },
    );
    // Campaign P: paused before anything ran.
    await enqueueCampaign({ id: 'held', connection, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-2' } }, alloyFleet(5).targets, { redis: t.redis, prefix: t.prefix, connections });
    await pauseCampaign('held', { redis: t.redis, prefix: t.prefix });

    // A stand-in worker of concurrency 10 takes what the limits allow: 2 + 2 + 1 slots, handed to BullMQ.
    await scripts.renew(leaseMs, 'stand-in', 10, []);
    const queue = new Queue<TargetJobData>(TARGET_QUEUE, { connection: t.redis, prefix: t.prefix });
    const dispatcher = new Dispatcher(scripts, queue, log, 256, leaseMs);
    t.defer(async () => {
      dispatcher.stop();
      await queue.close();
    });
    const step = await scripts.dispatch(256, leaseMs);
    expect(step.picks).toHaveLength(5);
    await dispatcher.deliver(step);

    const metrics = createApiMetrics({ redis: t.redis, prefix: t.prefix, topKeys: 2 });
    t.defer(() => metrics.close());
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    let samples = parse(await metrics.render());
    expect(total(samples, 'upshift_metrics_redis_up')).toBe(1);
    expect(total(samples, 'upshift_campaigns', { state: 'running' })).toBe(1);
    expect(total(samples, 'upshift_campaigns', { state: 'paused' })).toBe(1);
    expect(total(samples, 'upshift_campaigns', { state: 'completed' })).toBe(0);
    expect(total(samples, 'upshift_campaign_targets_pending', { campaign_state: 'paused' })).toBe(5);
    expect(total(samples, 'upshift_campaign_targets_pending', { campaign_state: 'running' })).toBe(2);
    expect(total(samples, 'upshift_campaign_targets_active', { campaign_state: 'running' })).toBe(5);
    // The two busiest keys by name, the third in "other". Key values are scoped to the connection.
    const scoped = (key: string) => `UPSHIFT_TEST_ALLOY_KEY/${key}`;
    expect(series(samples, 'upshift_limit_slots_in_use').map((s) => [s.labels.key, s.value])).toEqual([
      [scoped('tenant-a'), 2],
      [scoped('tenant-b'), 2],
    ]);
    expect(total(samples, 'upshift_limit_concurrency', { key: scoped('tenant-a') })).toBe(2);
    expect(total(samples, 'upshift_limit_slots_in_use_other')).toBe(1);
    expect(total(samples, 'upshift_limit_keys_in_use')).toBe(3);
    expect(total(samples, 'upshift_queue_jobs', { state: 'wait' })).toBe(5);
    expect(total(samples, 'upshift_connections_paused')).toBe(0);

    // Tenant c's target meets a Retry-After of a minute: its connection pauses, its slot frees.
    const c = step.picks.find((p) => (JSON.parse(p.entry) as { tenant: string }).tenant === 'c')!;
    const targetKey = operationFor('alloy.upgradeWorkflow').targetKey(JSON.parse(c.entry));
    const channel = eventsChannel(t.prefix);
    expect((await scripts.claim(c.holder, 'run-1', leaseMs, targetKey, channel)).kind).toBe('claimed');
    expect(await scripts.throttle(c.holder, 'run-1', targetKey, 60_000, 'THROTTLED: test', channel)).not.toBeNull();

    samples = parse(await metrics.render());
    expect(total(samples, 'upshift_connections_paused')).toBe(1);
    expect(total(samples, 'upshift_limit_slots_in_use_other')).toBe(0);
    expect(total(samples, 'upshift_limit_keys_in_use')).toBe(2);
    expect(series(samples, 'upshift_limit_slots_in_use').map((s) => s.labels.key)).toEqual([scoped('tenant-a'), scoped('tenant-b')]);
    expect(total(samples, 'upshift_campaign_targets_pending', { campaign_state: 'running' })).toBe(3);
    expect(total(samples, 'upshift_campaign_targets_active', { campaign_state: 'running' })).toBe(4);
  });

  it('a scrape while Redis cannot answer reports redis_up 0 and still serves', async () => {
    const unreachable = newRedis();
    unreachable.disconnect();
    const metrics = createApiMetrics({ redis: unreachable, prefix: t.prefix, timeoutMs: 200 });
    t.defer(() => metrics.close());
    const samples = parse(await metrics.render());
    expect(total(samples, 'upshift_metrics_redis_up')).toBe(0);
    expect(series(samples, 'upshift_campaigns')).toHaveLength(0);
    expect(series(samples, 'process_cpu_user_seconds_total')).toHaveLength(1);
  });

  it('upshift worker --metrics-port serves /metrics and /healthz until SIGTERM; a bad port is exit 2', async () => {
    const port = await freePort();
    const connectionsPath = testConnectionsFile('http://127.0.0.1:9');
    const worker = await t.spawnWorker(['--metrics-port', String(port)], { UPSHIFT_CONNECTIONS: connectionsPath });
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe('ok\n');
    const { status, text } = await scrape(port);
    expect(status).toBe(200);
    expect(text).toContain('# TYPE upshift_worker_outcomes_total counter');
    expect(text).toContain('# TYPE upshift_worker_platform_call_duration_seconds histogram');
    expect(text).toMatch(/^upshift_metrics_redis_up 1$/m);
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);

    worker.proc.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();

    const bad = spawn(process.execPath, [cliPath, 'worker', '--metrics-port', '70000'], { env: { ...process.env, REDIS_URL: redisUrl(), UPSHIFT_CONNECTIONS: connectionsPath } });
    let stderr = '';
    bad.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [exitCode] = (await once(bad, 'close')) as [number | null];
    expect(exitCode).toBe(2);
    expect(stderr).toMatch(/--metrics-port.*from 0 to 65535/);
  });
});
