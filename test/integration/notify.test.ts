import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApi } from '../../src/producer/api/index.js';
import { enqueueCampaign, pauseCampaign, cancelCampaign, promoteCampaign, undoCampaign } from '../../src/producer/index.js';
import {
  campaignKeys,
  createApiMetrics,
  createLogger,
  InputError,
  parseConnections,
  readNotifications,
  readStatus,
  schedulerKeys,
  verifySignature,
  type ConnectionRegistry,
  type NotificationDelivery,
} from '../../src/shared/index.js';
import { connectionsFile } from '../support/connections.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet, runCli } from '../support/fleet.js';
import { until, waitForCompletion, waitForState } from '../support/harness.js';

const SECRET_REF = 'UPSHIFT_TEST_HOOK_SECRET';
const SECRET = 'whsec_test_0123456789abcdef';

interface Delivery {
  readonly id: string;
  readonly signature: string;
  readonly body: string;
  /** The n-th request with this event id the receiver saw (1-based). */
  readonly nth: number;
  /** What the receiver did with it: 200, 500, no answer, or the connection dropped unanswered. */
  answer: Answer;
}

type Answer = 'ok' | 'fail' | 'hang' | 'drop' | 'echo';
type Behaviour = (nth: number) => Answer;

/**
 * A webhook receiver on 127.0.0.1: records every request, answers by `behaviour` (per event id:
 * the n-th request for that id), and holds `hang` requests open until `release()` or the caller
 * gives up. `until` resolves when a request makes its condition true (no polling).
 */
class Receiver {
  readonly requests: Delivery[] = [];
  private readonly held: ServerResponse[] = [];
  private readonly waiters: { ok: () => boolean; resolve: () => void }[] = [];
  private server!: Server;
  url = '';

  constructor(public behaviour: Behaviour) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/upshift`;
    return this;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const id = String(req.headers['upshift-event-id'] ?? '');
    const nth = this.requests.filter((r) => r.id === id).length + 1;
    const answer = req.method === 'POST' && req.url === '/hooks/upshift' ? this.behaviour(nth) : 'fail';
    this.requests.push({ id, signature: String(req.headers['upshift-signature'] ?? ''), body, nth, answer });
    if (answer === 'hang') this.held.push(res);
    else if (answer === 'drop') req.socket.destroy();
    // A receiver that echoes the request's headers in its error (some frameworks' debug pages).
    else if (answer === 'echo') res.writeHead(400).end(`bad request; upshift-signature: ${String(req.headers['upshift-signature'])}`);
    else res.writeHead(answer === 'ok' ? 200 : 500).end(answer === 'ok' ? 'thanks' : 'receiver down');
    this.check();
  }

  /** Answers every request held open with 200 (a slow receiver that finally answers). */
  release(): void {
    for (const res of this.held.splice(0)) {
      if (!res.destroyed) res.writeHead(200).end('late thanks');
    }
  }

  /** Requests held open and not given up by the sender. */
  holding(): number {
    return this.held.filter((r) => !r.destroyed && !r.writableEnded).length;
  }

  /** The events answered 200, each once (a receiver's dedup by `Upshift-Event-Id`). */
  delivered(): Map<string, { event: string; body: string }> {
    const out = new Map<string, { event: string; body: string }>();
    for (const r of this.requests) if (r.answer === 'ok' && !out.has(r.id)) out.set(r.id, { event: (JSON.parse(r.body) as { event: string }).event, body: r.body });
    return out;
  }

  until(ok: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    if (ok()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`receiver: ${what} not seen within ${timeoutMs} ms (${this.requests.length} requests)`)), timeoutMs);
      this.waiters.push({ ok, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  private check(): void {
    for (const w of this.waiters.splice(0)) {
      if (w.ok()) w.resolve();
      else this.waiters.push(w);
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}


/** The receiver's side of docs/API.md's snippet, written out: HMAC of "<t>.<body>", compared in constant time. */
function signedBy(secret: string, header: string, body: string): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex')) && Math.abs(Date.now() / 1000 - Number(m[1])) < 300;
}

describe('signed webhooks', () => {
  const t = setupDeployment({ sandbox: { latencyMs: 5 }, credentials: true });
  // In-process workers read the notifiers' secret from process.env: set for this file only.
  beforeAll(() => void vi.stubEnv(SECRET_REF, SECRET));
  afterAll(() => void vi.unstubAllEnvs());

  const receivers: Receiver[] = [];
  const receiver = async (behaviour: Behaviour) => {
    const r = await new Receiver(behaviour).start();
    receivers.push(r);
    t.defer(async () => {
      receivers.splice(receivers.indexOf(r), 1);
      await r.close();
    });
    return r;
  };
  /** The deployment's connections plus notifiers of the test's receivers. */
  const registry = (notifiers: Record<string, { url: string; privateNetwork?: boolean }>): ConnectionRegistry =>
    parseConnections(
      {
        connections: t.connections.connections,
        notifiers: Object.fromEntries(Object.entries(notifiers).map(([name, n]) => [name, { secretRef: SECRET_REF, ...n }])),
      },
      'test registry',
    );
  const spec = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 5000 },
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
    ...extra,
  });
  const deliveries = (id: string) => readNotifications(t.redis, t.prefix, id);
  const settled = (id: string, n: number) =>
    until(
      () => deliveries(id),
      (d: NotificationDelivery[]) => d.length === n && d.every((x) => x.status !== 'pending'),
      `${n} deliveries of ${id} settled`,
      60_000,
    );

  it('a receiver that fails, times out and answers 500 before it answers 200 gets each event once per id, signed; ids are stable', async () => {
    const hook = await receiver((nth) => (nth === 1 ? 'drop' : nth === 2 ? 'hang' : nth === 3 ? 'fail' : 'ok'));
    const reg = registry({ hook: { url: hook.url, privateNetwork: true } });
    const fleet = alloyFleet(20);
    t.sandbox.load(fleet.fixtures);
    await t.startWorker({ connections: reg, concurrency: 4, notifyTimeoutMs: 3000, notifyBackoffMs: 50 });
    const notify = [{ to: 'hook', events: ['step-completed', 'gated', 'paused', 'completed', 'cancelled', 'undo-started'] }];
    const gated = waitForState(t.prefix, 'hooked', ['gated']);
    await enqueueCampaign(spec('hooked', { rollout: { steps: [{ count: 5 }], gate: 'manual' }, notify }), fleet.targets, { ...t.producer, connections: reg });
    // What the campaign asked is in its meta, for scripts and operators to see.
    expect(JSON.parse((await t.redis.hget(campaignKeys(t.prefix, 'hooked').meta, 'notify'))!)).toEqual(notify);
    await gated;
    const ended = waitForCompletion(t.prefix, 'hooked');
    await promoteCampaign('hooked', { ...t.producer });
    await ended;
    await undoCampaign('hooked', { ...t.producer, connections: reg });
    // Again from a registry without the notifier (an operator's machine): the same campaign.
    expect(await undoCampaign('hooked', t.producer)).toMatchObject({ campaignId: 'hooked-undo', created: false });

    await hook.until(() => [...hook.delivered().values()].some((d) => d.event === 'undo-started'), 'undo-started answered 200');
    const records = await settled('hooked', 4);
    const got = hook.delivered();
    // Each event once after dedup, numbered in the order the campaign met them, ids <campaign>:<n>
    // (n from one counter of the deployment, never reused when a campaign id comes back). Two
    // events of one step (step-completed, gated) are sent side by side: either may arrive first.
    const n = (id: string) => Number(id.slice(id.lastIndexOf(':') + 1));
    const hooked = [...got.entries()].filter(([id]) => id.startsWith('hooked:')).sort(([a], [b]) => n(a) - n(b));
    expect(hooked.map(([id, d]) => [id, d.event])).toEqual([
      ['hooked:1', 'step-completed'],
      ['hooked:2', 'gated'],
      ['hooked:3', 'completed'],
      ['hooked:4', 'undo-started'],
    ]);
    for (const [id] of got) {
      const all = hook.requests.filter((r) => r.id === id);
      // The connection dropped, then no answer within the timeout, then 500, then 200: four
      // attempts, one id, one body.
      expect(all.map((r) => r.answer)).toEqual(['drop', 'hang', 'fail', 'ok']);
      expect(new Set(all.map((r) => r.body)).size).toBe(1);
      for (const r of all) {
        expect(verifySignature(SECRET, r.signature, r.body)).toBe(true);
        expect(signedBy(SECRET, r.signature, r.body)).toBe(true);
        expect(signedBy('another secret', r.signature, r.body)).toBe(false);
      }
    }
    const completed = JSON.parse(got.get('hooked:3')!.body) as Record<string, unknown>;
    expect(completed).toMatchObject({ id: 'hooked:3', event: 'completed', campaign: 'hooked', state: 'completed', counts: { total: 20, upgraded: 20, skipped: 0, failed: 0 } });
    expect(typeof completed.at).toBe('number');
    expect(JSON.parse(got.get('hooked:1')!.body)).toMatchObject({ state: 'gated', step: 0, counts: { upgraded: 5 } });
    expect(JSON.parse(got.get('hooked:4')!.body)).toMatchObject({ event: 'undo-started', undoCampaign: 'hooked-undo' });

    for (const d of records) {
      expect(d).toMatchObject({ notifier: 'hook', status: 'delivered', attempts: 4 });
      expect(d.lastError).toBe('HTTP 500 receiver down');
    }
    // The undo campaign tells the same receiver of its own end.
    // Event ids come from one counter of the deployment: the undo campaign's is the next one.
    await hook.until(() => hook.delivered().has('hooked-undo:5'), "the undo campaign's completed");
    expect(hook.delivered().get('hooked-undo:5')!.event).toBe('completed');
    await settled('hooked-undo', 1);
    expect(await t.redis.zcard(schedulerKeys(t.prefix).notifyDue)).toBe(0);

    const metrics = await t.worker.metrics.render();
    expect(metrics).toMatch(/upshift_worker_notifications_total\{outcome="delivered"\} 5/);
    expect(metrics).toMatch(/upshift_worker_notifications_total\{outcome="retried"\} 15/);
  });

  it('pause and cancel are told; events recorded while no worker runs wait in Redis for one', async () => {
    const hook = await receiver(() => 'ok');
    const reg = registry({ hook: { url: hook.url, privateNetwork: true } });
    const fleet = alloyFleet(10);
    t.sandbox.load(fleet.fixtures);
    await enqueueCampaign(spec('told', { notify: [{ to: 'hook', events: ['paused', 'cancelled', 'completed'] }] }), fleet.targets, { ...t.producer, connections: reg });
    await pauseCampaign('told', t.producer);
    await cancelCampaign('told', t.producer);
    // Nobody delivers yet: both wait, pending, in Redis, and the fleet's /metrics counts them.
    expect((await deliveries('told')).map((d) => [d.event, d.status, d.attempts])).toEqual([
      ['paused', 'pending', 0],
      ['cancelled', 'pending', 0],
    ]);
    const gauges = createApiMetrics({ redis: t.redis, prefix: t.prefix });
    t.defer(() => gauges.close());
    expect(await gauges.render()).toMatch(/^upshift_notifications_pending 2$/m);
    await t.startWorker({ connections: reg });
    await hook.until(() => hook.delivered().size === 2, 'both events');
    expect([...hook.delivered().values()].map((d) => JSON.parse(d.body) as Record<string, unknown>)).toMatchObject([
      { id: 'told:1', event: 'paused', state: 'paused', reason: 'OPERATOR' },
      { id: 'told:2', event: 'cancelled', state: 'cancelled', reason: 'OPERATOR' },
    ]);
    // The cancelled campaign's drain ending is not another event.
    expect((await settled('told', 2)).map((d) => d.status)).toEqual(['delivered', 'delivered']);
    // The status counts them (the dashboard reads the list only when `changes` moves): two
    // recorded, two attempts started, two ended.
    expect((await readStatus(t.redis, t.prefix, 'told'))!.notifications).toEqual({ total: 2, delivered: 2, failed: 0, pending: 0, changes: 6 });
    expect(await gauges.render()).toMatch(/^upshift_notifications_pending 0$/m);
  });

  it('a failure budget breach with onBreach "undo" is told: cancelled, then undo-started', async () => {
    const hook = await receiver(() => 'ok');
    const reg = registry({ hook: { url: hook.url, privateNetwork: true } });
    const fleet = alloyFleet(40);
    t.sandbox.load(fleet.fixtures);
    // Every other install refuses the change (403): a permanent failure.
    t.sandbox.load({ alloy: { installs: fleet.targets.filter((_, i) => i % 2 === 0).map((u) => ({ workflowId: 'wf-1', userId: u.userId, version: 1, forbidden: true })) } });
    await t.startWorker({ connections: reg, concurrency: 2 });
    await enqueueCampaign(
      spec('breached', { rollout: { steps: [100], maxFailureRatio: 0.2, minSamples: 4, onBreach: 'undo' }, notify: [{ to: 'hook', events: ['paused', 'cancelled', 'completed', 'undo-started'] }] }),
      fleet.targets,
      { ...t.producer, connections: reg },
    );
    await hook.until(() => [...hook.delivered().keys()].filter((id) => id.startsWith('breached:')).length === 2, 'cancelled and undo-started');
    const bodies = [...hook.delivered().entries()].filter(([id]) => id.startsWith('breached:')).map(([, d]) => JSON.parse(d.body) as Record<string, unknown>);
    expect(bodies).toMatchObject([
      { id: 'breached:1', event: 'cancelled', state: 'cancelled', reason: 'FAILURE_BUDGET_EXCEEDED' },
      { id: 'breached:2', event: 'undo-started', undoCampaign: 'breached-undo' },
    ]);
    await settled('breached', 2);
  });

  it('a worker killed mid-delivery loses nothing: a new worker delivers the event', async () => {
    let answering = false;
    const hook = await receiver(() => (answering ? 'ok' : 'hang'));
    const reg = registry({ hook: { url: hook.url, privateNetwork: true } });
    const fleet = alloyFleet(3);
    t.sandbox.load(fleet.fixtures);
    await enqueueCampaign(spec('killed', { notify: [{ to: 'hook', events: ['paused'] }] }), fleet.targets, { ...t.producer, connections: reg });
    await pauseCampaign('killed', t.producer);
    const doomed = await t.spawnWorker(['--notify-timeout-ms', '2000'], { UPSHIFT_CONNECTIONS: connectionsFile(reg), [SECRET_REF]: SECRET });
    await hook.until(() => hook.requests.length === 1, 'the first attempt');
    doomed.proc.kill('SIGKILL');
    await doomed.exited;
    expect((await deliveries('killed'))[0]).toMatchObject({ status: 'pending', attempts: 1 });

    answering = true;
    await t.startWorker({ connections: reg, notifyTimeoutMs: 2000 });
    await hook.until(() => hook.delivered().has('killed:1'), 'the event after the kill');
    expect(hook.requests.map((r) => [r.id, r.answer])).toEqual([
      ['killed:1', 'hang'],
      ['killed:1', 'ok'],
    ]);
    expect(hook.requests[0]!.body).toBe(hook.requests[1]!.body);
    expect((await settled('killed', 1))[0]).toMatchObject({ status: 'delivered', attempts: 2 });
  });

  it('a slow receiver never slows the campaign: it completes while a delivery is still held open', async () => {
    const hook = await receiver(() => 'hang');
    const reg = registry({ hook: { url: hook.url, privateNetwork: true } });
    const fleet = alloyFleet(20);
    t.sandbox.load(fleet.fixtures);
    // One delivery at a time, and a timeout far beyond the campaign's run.
    await t.startWorker({ connections: reg, concurrency: 4, notifyConcurrency: 1, notifyTimeoutMs: 120_000 });
    const ended = waitForCompletion(t.prefix, 'slow');
    await enqueueCampaign(spec('slow', { rollout: { steps: [{ count: 2 }] }, notify: [{ to: 'hook', events: ['step-completed', 'completed'] }] }), fleet.targets, {
      ...t.producer,
      connections: reg,
    });
    await hook.until(() => hook.requests.length === 1, 'step-completed sent');
    const s = await ended;
    expect(s).toMatchObject({ state: 'completed', upgraded: 20 });
    // The campaign ended while the receiver still held the first event's request.
    expect(hook.holding()).toBe(1);
    expect(hook.requests.map((r) => JSON.parse(r.body).event as string)).toEqual(['step-completed']);
    hook.behaviour = () => 'ok';
    hook.release();
    await hook.until(() => hook.delivered().size === 1 && hook.requests.length === 2, 'completed sent after the release');
    expect((await settled('slow', 2)).map((d) => [d.event, d.status, d.attempts])).toEqual([
      ['step-completed', 'delivered', 1],
      ['completed', 'delivered', 1],
    ]);
  });

  it("a stale sender's late result changes nothing: only the latest claimed attempt settles the delivery", async () => {
    const reg = registry({ hook: { url: 'http://127.0.0.1:9/hooks', privateNetwork: true } });
    await enqueueCampaign(spec('stale', { notify: [{ to: 'hook', events: ['paused'] }] }), alloyFleet(2).targets, { ...t.producer, connections: reg });
    await pauseCampaign('stale', t.producer);
    const due = schedulerKeys(t.prefix).notifyDue;
    const first = (await t.scripts.notifyClaim(1, 60_000, ['hook'])).claims[0]!;
    expect(first).toMatchObject({ eventId: 'stale:1', attempts: 1 });
    // Sender A's lease runs out mid-send (made due now, as its expiry would); sender B claims the next attempt.
    await t.redis.zadd(due, 0, first.member);
    const second = (await t.scripts.notifyClaim(1, 60_000, ['hook'])).claims[0]!;
    expect(second).toMatchObject({ member: first.member, attempts: 2 });
    const leased = await t.redis.zscore(due, first.member);

    // A's late results, a failure and a success: neither overwrites B's attempt nor removes its member.
    expect(await t.scripts.notifyDone(first.member, first.attempts, 'retry', 50, 'HTTP 500 late', 86_400_000)).toBe('not-due');
    expect(await t.scripts.notifyDone(first.member, first.attempts, 'delivered', 50, '', 86_400_000)).toBe('not-due');
    expect(await t.redis.zscore(due, first.member)).toBe(leased);
    const [during] = await deliveries('stale');
    expect(during).toMatchObject({ status: 'pending', attempts: 2 });
    expect(during!.lastError).toBeUndefined();
    expect(during!.nextAt).toBeUndefined();

    // B's own result settles it.
    expect(await t.scripts.notifyDone(second.member, second.attempts, 'retry', 50, 'HTTP 500 from B', 86_400_000)).toBe('rescheduled');
    expect((await deliveries('stale'))[0]).toMatchObject({ status: 'pending', attempts: 2, lastError: 'HTTP 500 from B' });
    // Claimed again and delivered: only that attempt's result counts.
    await t.redis.zadd(due, 0, first.member);
    const third = (await t.scripts.notifyClaim(1, 60_000, ['hook'])).claims[0]!;
    expect(await t.scripts.notifyDone(second.member, second.attempts, 'delivered', 50, '', 86_400_000)).toBe('not-due');
    expect(await t.scripts.notifyDone(third.member, third.attempts, 'delivered', 50, '', 86_400_000)).toBe('delivered');
    expect(await t.redis.zscore(due, first.member)).toBeNull();
  });

  it("a receiver echoing the request does not put the attempt's signature in the stored error", async () => {
    const hook = await receiver((nth) => (nth === 1 ? 'echo' : 'ok'));
    const reg = registry({ hook: { url: hook.url, privateNetwork: true } });
    t.sandbox.load(alloyFleet(2).fixtures);
    await enqueueCampaign(spec('echoed', { notify: [{ to: 'hook', events: ['paused'] }] }), alloyFleet(2).targets, { ...t.producer, connections: reg });
    await pauseCampaign('echoed', t.producer);
    await t.startWorker({ connections: reg, notifyBackoffMs: 50 });
    const [d] = await settled('echoed', 1);
    const sent = hook.requests[0]!.signature;
    expect(sent).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(d).toMatchObject({ status: 'delivered', attempts: 2, lastError: 'HTTP 400 bad request; upshift-signature: [redacted]' });
    expect(d!.lastError).not.toContain(sent.slice(sent.indexOf('v1=') + 3));
  });

  it('a look drops deliveries whose data expired and gives up those past the age limit, whatever their notifier', async () => {
    const reg = registry({ hook: { url: 'http://127.0.0.1:9/hooks', privateNetwork: true }, other: { url: 'http://127.0.0.1:9/other', privateNetwork: true } });
    const due = schedulerKeys(t.prefix).notifyDue;
    const both = [
      { to: 'hook', events: ['paused'] },
      { to: 'other', events: ['paused'] },
    ];
    await enqueueCampaign(spec('expired', { notify: both }), alloyFleet(2).targets, { ...t.producer, connections: reg });
    await pauseCampaign('expired', t.producer);
    await enqueueCampaign(spec('aged', { notify: both }), alloyFleet(2).targets, { ...t.producer, connections: reg });
    await pauseCampaign('aged', t.producer);
    expect(await t.redis.zcard(due)).toBe(4);
    // The first campaign's data expired; the second's deliveries are a day old (their senders kept dying).
    await t.redis.del(campaignKeys(t.prefix, 'expired').notify);
    const key = campaignKeys(t.prefix, 'aged').notify;
    for (const [field, value] of Object.entries(await t.redis.hgetall(key))) {
      if (!field.startsWith('d:')) continue;
      const d = JSON.parse(value) as Record<string, unknown>;
      await t.redis.hset(key, field, JSON.stringify({ ...d, attempts: 3, lastError: 'HTTP 500 down', createdAt: Date.now() - 25 * 3_600_000 }));
    }

    // A worker that can send to 'hook' only: 'other''s deliveries go too.
    const look = await t.scripts.notifyClaim(8, 60_000, ['hook'], { maxAgeMs: 24 * 3_600_000 });
    expect(look).toMatchObject({ claims: [], gaveUp: 2, nextDueMs: null });
    expect(await t.redis.zcard(due)).toBe(0);
    const aged = await deliveries('aged');
    expect(aged.map((d) => [d.notifier, d.status, d.attempts])).toEqual([
      ['hook', 'failed', 3],
      ['other', 'failed', 3],
    ]);
    for (const d of aged) expect(d.lastError).toBe('given up: not delivered within the age limit; last error: HTTP 500 down');
    expect((await readStatus(t.redis, t.prefix, 'aged'))!.notifications).toMatchObject({ total: 2, failed: 2, pending: 0 });
    // The fleet's gauge is back to 0.
    const gauges = createApiMetrics({ redis: t.redis, prefix: t.prefix });
    t.defer(() => gauges.close());
    expect(await gauges.render()).toMatch(/^upshift_notifications_pending 0$/m);
  });

  it('a worker that can send to no notifier still sweeps: a delivery whose data expired leaves the due set', async () => {
    const reg = registry({ hook: { url: 'http://127.0.0.1:9/hooks', privateNetwork: true } });
    const due = schedulerKeys(t.prefix).notifyDue;
    await enqueueCampaign(spec('swept', { notify: [{ to: 'hook', events: ['paused'] }] }), alloyFleet(2).targets, { ...t.producer, connections: reg });
    await pauseCampaign('swept', t.producer);
    await t.redis.del(campaignKeys(t.prefix, 'swept').notify);
    expect(await t.redis.zcard(due)).toBe(1);
    // The deployment's registry: no notifier at all.
    await t.startWorker({ outboxSweepMs: 50 });
    await until(() => t.redis.zcard(due), (n) => n === 0, 'the orphan swept');
  });

  it("deliveries to a notifier no worker can send to never hold the head: one look passes them and takes the next", async () => {
    const reg = registry({ hook: { url: 'http://127.0.0.1:9/hooks', privateNetwork: true }, other: { url: 'http://127.0.0.1:9/other', privateNetwork: true } });
    const due = schedulerKeys(t.prefix).notifyDue;
    await enqueueCampaign(spec('head', { notify: [{ to: 'hook', events: ['paused'] }] }), alloyFleet(2).targets, { ...t.producer, connections: reg });
    // 30 deliveries to 'other' due before it: three times a look of one.
    const key = campaignKeys(t.prefix, 'head').notify;
    for (let n = 1; n <= 30; n++) {
      await t.redis.hset(key, `e:${1000 + n}`, '{}', `d:${1000 + n}|other`, JSON.stringify({ status: 'pending', attempts: 0, createdAt: Date.now(), updatedAt: Date.now() }));
      await t.redis.zadd(due, n, `head:${1000 + n}|other`);
    }
    await pauseCampaign('head', t.producer);
    const taken = await t.scripts.notifyClaim(1, 60_000, ['hook']);
    expect(taken.claims.map((c) => c.notifier)).toEqual(['hook']);
    // Put back (no worker that can send to 'other' has looked), still pending.
    const now = taken.nowMs;
    const others = await t.redis.zrange(due, 0, -1, 'WITHSCORES');
    expect(others.length).toBe(62);
    for (let i = 0; i < others.length; i += 2) if (others[i]!.endsWith('|other')) expect(Number(others[i + 1])).toBeGreaterThan(now);

    // Once a worker that can send to 'other' looks, the others leave its deliveries where they are.
    await t.redis.zadd(due, 0, 'head:1001|other');
    expect((await t.scripts.notifyClaim(1, 60_000, ['other'])).claims.map((c) => c.member)).toEqual(['head:1001|other']);
    await t.redis.zadd(due, 0, 'head:1002|other');
    expect((await t.scripts.notifyClaim(1, 60_000, ['hook'])).claims).toEqual([]);
    expect(await t.redis.zscore(due, 'head:1002|other')).toBe('0');
  });

  it('refuses an unregistered notifier at enqueue: library, CLI (exit 2) and API (400), naming the field', async () => {
    const reg = registry({});
    const bad = spec('refused', { notify: [{ to: 'nobody', events: ['completed'] }], targets: [{ userId: 'u' }] });
    const err = await enqueueCampaign(bad, undefined, { ...t.producer, connections: reg }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ code: 'NOTIFIER_NOT_REGISTERED', field: 'notify[0].to' });
    expect(await t.redis.exists(campaignKeys(t.prefix, 'refused').status)).toBe(0);

    const file = join(t.tempDir('notify-spec-'), 'spec.json');
    writeFileSync(file, JSON.stringify(bad));
    const cli = await runCli(['enqueue', file], { ...t.env(), UPSHIFT_CONNECTIONS: connectionsFile(reg) });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('field "notify[0].to"');
    expect(cli.stderr).toContain('notifier "nobody" is not registered');

    const app = await buildApi({ redis: t.redis, prefix: t.prefix, log: createLogger('silent'), apiToken: 'tok-0123456789abcdef', connections: reg });
    t.defer(() => app.close());
    const res = await app.inject({ method: 'POST', url: '/campaigns', headers: { authorization: 'Bearer tok-0123456789abcdef' }, payload: bad });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'invalid_input', code: 'NOTIFIER_NOT_REGISTERED', field: 'notify[0].to' });
    expect(await t.redis.exists(campaignKeys(t.prefix, 'refused').status)).toBe(0);
  });

  it('a notifier on 127.0.0.1 without privateNetwork is refused by the egress guard: failed at once, not retried', async () => {
    const hook = await receiver(() => 'ok');
    const reg = registry({ hook: { url: hook.url } });
    const fleet = alloyFleet(3);
    t.sandbox.load(fleet.fixtures);
    await enqueueCampaign(spec('guarded', { notify: [{ to: 'hook', events: ['paused'] }] }), fleet.targets, { ...t.producer, connections: reg });
    await pauseCampaign('guarded', t.producer);
    const w = await t.startWorker({ connections: reg, notifyBackoffMs: 50 });
    const [d] = await settled('guarded', 1);
    expect(d).toMatchObject({ status: 'failed', attempts: 1 });
    expect(d!.lastError).toMatch(/^EGRESS_DENIED: egress denied: 127\.0\.0\.1/);
    expect((await readStatus(t.redis, t.prefix, 'guarded'))!.notifications).toEqual({ total: 1, delivered: 0, failed: 1, pending: 0, changes: 3 });
    expect(hook.requests).toHaveLength(0);
    expect(await t.redis.zcard(schedulerKeys(t.prefix).notifyDue)).toBe(0);
    expect(await w.metrics.render()).toMatch(/upshift_worker_notifications_total\{outcome="failed"\} 1/);
  });

  it('upshift notifications lists the deliveries (table and --json)', async () => {
    const hook = await receiver(() => 'ok');
    const reg = registry({ hook: { url: hook.url, privateNetwork: true } });
    t.sandbox.load(alloyFleet(2).fixtures);
    await enqueueCampaign(spec('listed', { notify: [{ to: 'hook', events: ['paused'] }] }), alloyFleet(2).targets, { ...t.producer, connections: reg });
    await pauseCampaign('listed', t.producer);
    await t.startWorker({ connections: reg });
    await settled('listed', 1);
    const json = await runCli(['notifications', 'listed', '--json'], t.env());
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject([{ eventId: 'listed:1', event: 'paused', notifier: 'hook', status: 'delivered', attempts: 1 }]);
    const table = await runCli(['notifications', 'listed'], t.env());
    expect(table.stdout).toMatch(/^EVENT ID\s+EVENT\s+NOTIFIER\s+STATUS\s+ATTEMPTS/);
    expect(table.stdout).toMatch(/listed:1\s+paused\s+hook\s+delivered\s+1/);
    const missing = await runCli(['notifications', 'nope'], t.env());
    expect(missing.code).toBe(2);
  });
});
