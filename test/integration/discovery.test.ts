import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { campaignKeys, HttpClient, InputError, readStatus, UpshiftError, type HttpRequest, type HttpResponse } from '../../src/shared/index.js';
import type { Endpoint } from '../../src/shared/http.js';
import { setupDeployment } from '../support/deployment.js';
import { waitForCompletion } from '../support/harness.js';

/** An HttpClient that fails once, like a producer that died, after `n` search pages. */
class DyingAfter extends HttpClient {
  pages = 0;
  constructor(private readonly n: number) {
    super();
  }
  override async send(endpoint: Endpoint, req: HttpRequest, timeoutMs: number, signal?: AbortSignal): Promise<HttpResponse> {
    if (req.segments.at(-1) === 'search' && this.pages++ === this.n) throw new UpshiftError('INVALID_REQUEST', 'producer died');
    return super.send(endpoint, req, timeoutMs, signal);
  }
}

describe('discovery (conductor.upgradeExecution)', () => {
  const t = setupDeployment({ sandbox: { record: true, latencyMs: 1 }, urls: ['http://127.0.0.1:1'], credentials: true });
  const spec = {
    id: 'found',
    connection: { baseUrl: 'http://127.0.0.1:1', credentialRef: 'UPSHIFT_TEST_CONDUCTOR_KEY', timeoutMs: 5000 },
    operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2 },
    targets: { discover: { workflowName: 'flow', version: 1, status: ['RUNNING', 'PAUSED'], pageSize: 5000 } },
  };

  it('pages through 12,000 executions (3 pages), survives a producer and a worker crash, upgrades each once', async () => {
    const running = Array.from({ length: 12_000 }, (_, i) => ({ workflowId: `x-${i}`, workflowName: 'flow', workflowVersion: 1, status: 'RUNNING' as const }));
    t.sandbox.load({
      conductor: {
        definitions: [1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })),
        executions: [
          ...running,
          // Not matched by the query: another workflow, an ended execution, another version.
          { workflowId: 'other', workflowName: 'billing', workflowVersion: 1, status: 'RUNNING' },
          { workflowId: 'ended', workflowName: 'flow', workflowVersion: 1, status: 'COMPLETED' },
          { workflowId: 'v2', workflowName: 'flow', workflowVersion: 2, status: 'RUNNING' },
        ],
      },
    });
    const s = { ...spec, connection: { ...spec.connection, baseUrl: t.sandbox.url } };
    const doomed = await t.spawnWorker(['--concurrency', '20', '--lease-ms', '1500', '--lock-duration-ms', '1000', '--stalled-interval-ms', '500']);

    // The producer dies after the first page: the campaign runs what it has so far.
    await expect(enqueueCampaign(s, undefined, { ...t.producer, http: new DyingAfter(1) })).rejects.toThrow('producer died');
    expect(await readStatus(t.redis, t.prefix, 'found')).toMatchObject({ state: 'running', total: 5000 });

    // A worker dies mid-run; another takes over; the producer is run again and resumes at page 2.
    await t.sandbox.requestsReached(2000);
    doomed.proc.kill('SIGKILL');
    await t.spawnWorker(['--concurrency', '20', '--lease-ms', '1500']);
    const resumed = await enqueueCampaign(s, undefined, t.producer);
    expect(resumed).toMatchObject({ campaignId: 'found', total: 12_000, created: false });
    // Enqueueing a finished discovery again is a no-op.
    expect(await enqueueCampaign(s, undefined, t.producer)).toMatchObject({ total: 12_000, created: false });

    const status = await waitForCompletion(t.prefix, 'found', 120_000);
    expect(status).toMatchObject({ state: 'completed', total: 12_000, failed: 0, pending: 0, active: 0 });
    // An execution the killed worker had upgraded, without living to record it, is read again
    // and found current: skipped ALREADY_CURRENT, not upgraded twice.
    expect(status.upgraded + status.skipped).toBe(12_000);
    expect(status.skipped).toBeLessThanOrEqual(20);
    const searches = t.sandbox.received!.filter((r) => r.path.startsWith('/api/workflow/search'));
    // Page 1 before the crash; the resumed run starts at page 2. Upgraded executions leave the
    // result set meanwhile, so a second pass from 0 finds what the shift skipped, and a pass
    // that finds nothing new ends discovery.
    const starts = searches.map((r) => new URL(r.path, 'http://x').searchParams.get('start'));
    expect(starts.slice(0, 3)).toEqual(['0', '5000', '10000']);
    expect(starts.filter((x) => x === '0').length).toBeGreaterThanOrEqual(2);
    expect(Number((await t.redis.hget(campaignKeys(t.prefix, 'found').status, 'discoverPasses'))!)).toBeGreaterThanOrEqual(2);
    expect(new URL(searches[0]!.path, 'http://x').searchParams.get('query')).toBe('workflowType IN (flow) AND status IN (RUNNING,PAUSED) AND version IN (1)');
    const execs = t.sandbox.state().conductor!.executions!;
    expect(execs.filter((e) => e.workflowId.startsWith('x-')).every((e) => e.workflowVersion === 2)).toBe(true);
    expect(execs.find((e) => e.workflowId === 'other')!.workflowVersion).toBe(1);
    // Every execution was upgraded exactly once.
    const applied = Object.values(t.sandbox.stats().appliedByTarget);
    expect(applied).toHaveLength(12_000);
    expect(applied.every((n) => n === 1)).toBe(true);
    expect(await t.redis.exists(campaignKeys(t.prefix, 'found').seen)).toBe(0);
  });

  it('refuses discovery for other operations, with a staged rollout, and with a per-target zone', async () => {
    const bad = { ...spec, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'w' } };
    await expect(enqueueCampaign(bad, undefined, t.producer)).rejects.toThrow(/discovery is for conductor.upgradeExecution only/);
    const staged = { ...spec, rollout: { steps: [10] } };
    await expect(enqueueCampaign(staged, undefined, t.producer)).rejects.toBeInstanceOf(InputError);
    const zoned = { ...spec, schedule: { timezone: '${target.tz}', windows: [{ days: ['mon'], from: '09:00', to: '10:00' }] } };
    const refused = await enqueueCampaign(zoned, undefined, t.producer).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(InputError);
    expect(String(refused)).toMatch(/schedule\.timezone.*discovered targets carry only their workflowId/s);
  });
});
