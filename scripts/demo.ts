/**
 * `npm run demo`: the whole path on one machine. Redis (REDIS_URL, or a private redis-server),
 * the sandbox with faults injected, two worker processes, one campaign per operation type with
 * live progress, then a summary per campaign; a cohort rollout whose signed webhooks a receiver
 * in this process verifies and prints; the undo of one campaign. Stops everything it started
 * and exits 0.
 */
import { sandboxConnections, writeConnectionsFile } from './lib/connections.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { enqueueCampaign, undoCampaign, undoCampaignId } from '../src/producer/index.js';
import { SANDBOX_KEYS, startSandbox, type SandboxFixtures } from '../src/sandbox/index.js';
import { eventsChannel, readStatus, streamReport, type CampaignStatus } from '../src/shared/index.js';
import { startPrivateRedis, type TestRedis } from './lib/private-redis.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const CREDENTIALS = {
  DEMO_ALLOY_KEY: SANDBOX_KEYS.alloy,
  DEMO_CONDUCTOR_KEY: SANDBOX_KEYS.conductor,
  DEMO_TALLYFY_KEY: SANDBOX_KEYS.tallyfy,
  DEMO_NECTED_KEY: SANDBOX_KEYS.nected,
};
// The webhook receiver's signing secret: the workers sign with it, the receiver checks with it.
const HOOK_SECRET_REF = 'DEMO_HOOK_SECRET';
const HOOK_SECRET = 'whsec-demo-not-a-real-secret';
// The cohort rollout's fleet: Tallyfy runs of another organisation, each tagged with its tier.
const FLEET = range(90).map((i) => ({ runId: `fleet-run-${i}`, tier: i < 6 ? 'internal' : i < 30 ? 'free' : 'paid' }));
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

async function getRedis(): Promise<TestRedis> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, how: 'REDIS_URL', stop: async () => undefined };
  try {
    return await startPrivateRedis();
  } catch (err) {
    throw new Error(
      `the demo needs Redis: set REDIS_URL, or install redis-server (Debian/Ubuntu: sudo apt-get install redis-server; ` +
        `macOS: brew install redis). (${(err as Error).message})`,
    );
  }
}

function fixtures(): SandboxFixtures {
  const def = (name: string, version: number) => ({ name, version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'team@acme.test' });
  return {
    alloy: {
      workflows: { 'wf-onboarding': { latestVersion: 3 } },
      installs: range(1500).map((i) => ({
        workflowId: 'wf-onboarding',
        userId: `user-${i}`,
        version: 2,
        ...(i % 97 === 0 ? { reinstallRequired: true } : {}),
        ...(i % 331 === 0 ? { forbidden: true } : {}),
      })),
    },
    conductor: {
      definitions: [def('order-flow', 1), def('order-flow', 2), ...range(40).map((i) => def(`flow-${i}`, 1))],
      executions: range(800).map((i) => ({
        workflowId: `exec-${i}`,
        workflowName: i % 101 === 0 ? 'billing-flow' : 'order-flow',
        workflowVersion: i % 10 === 0 ? 2 : 1,
        status: i % 7 === 0 ? 'COMPLETED' : i % 13 === 0 ? 'PAUSED' : 'RUNNING',
      })),
    },
    tallyfy: {
      runs: [
        ...range(500).map((i) => ({ orgId: 'org-acme', id: `run-${i}`, name: `Onboarding ${i}`, ...(i % 50 === 0 ? { forbidden: true } : {}) })),
        ...FLEET.map((r) => ({ orgId: 'org-fleet', id: r.runId, name: `Renewal ${r.runId.slice(10)}` })),
      ],
    },
    nected: {
      workflows: range(300).map((i) => ({
        entityId: `rule-${i}`,
        graph: { name: `rule ${i}`, description: 'v1', startNode: '1', nodes: [{ id: '1', type: 'trigger', data: { nodeType: 'apiTrigger' } }], edges: [], settings: { auditIO: i % 25 === 0 } },
      })),
    },
  };
}

function campaigns() {
  // By registered name (scripts/lib/connections.ts names each entry after its variable): the
  // spec says which connection, the operator's registry says where it goes and with what key.
  const conn = (ref: keyof typeof CREDENTIALS) => ({ name: ref, timeoutMs: 5000 });
  const retry = { attempts: 6, backoffMs: 50 };
  return [
    {
      spec: { id: 'demo-alloy', name: 'Onboarding users to v3', connection: conn('DEMO_ALLOY_KEY'), operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-onboarding' }, retry },
      targets: [...range(1500).map((i) => ({ userId: `user-${i}`, tenant: `t${i % 20}` })), { userId: 'user-that-left' }],
    },
    {
      spec: { id: 'demo-conductor-exec', name: 'Running orders to order-flow v2', connection: conn('DEMO_CONDUCTOR_KEY'), operation: { type: 'conductor.upgradeExecution', name: 'order-flow', version: 2 }, retry },
      targets: range(800).map((i) => ({ workflowId: `exec-${i}` })),
    },
    {
      spec: {
        id: 'demo-conductor-defs',
        name: 'Add a 1 h timeout to every flow',
        connection: conn('DEMO_CONDUCTOR_KEY'),
        operation: { type: 'conductor.updateDefinition', ownerEmail: 'platform@acme.test', patch: [{ op: 'replace', path: '/timeoutSeconds', value: 3600 }] },
        retry,
      },
      targets: [...range(40).map((i) => ({ name: `flow-${i}` })), { name: 'flow-0' }, { name: 'retired-flow' }],
    },
    {
      spec: { id: 'demo-tallyfy', name: 'Rename onboarding runs', connection: conn('DEMO_TALLYFY_KEY'), operation: { type: 'tallyfy.updateRun', orgId: 'org-acme', changes: { summary: 'Migrated to the 2026 process', tags: ['migrated'] } }, retry },
      targets: range(500).map((i) => ({ runId: `run-${i}` })),
    },
    {
      spec: { id: 'demo-nected', name: 'Turn on audit logging', connection: conn('DEMO_NECTED_KEY'), operation: { type: 'nected.updateWorkflow', patch: [{ op: 'replace', path: '/settings/auditIO', value: true }] }, retry },
      targets: range(300).map((i) => ({ entityId: `rule-${i}` })),
    },
  ];
}

/**
 * The cohort rollout: internal tenants, then the free tier, then everyone else, each step
 * opening by itself once the one before has every outcome (`gate: auto`), with its events sent
 * to the receiver registered as `demo-hook`.
 */
function cohortCampaign() {
  return {
    spec: {
      id: 'demo-cohorts',
      name: 'Renewal runs to the 2026 template, tier by tier',
      connection: { name: 'DEMO_TALLYFY_KEY', timeoutMs: 5000 },
      operation: { type: 'tallyfy.updateRun', orgId: 'org-fleet', changes: { summary: 'Renewal, 2026 template' } },
      retry: { attempts: 6, backoffMs: 50 },
      rollout: { steps: [{ where: { tier: 'internal' } }, { where: { tier: 'free' } }], gate: 'auto' },
      notify: [{ to: 'demo-hook', events: ['step-completed', 'gated', 'paused', 'completed', 'cancelled'] }],
    },
    targets: FLEET,
  } as const;
}

/** A receiver's check of `Upshift-Signature` (docs/API.md): `v1` is the HMAC-SHA256 of `<t>.<body>`, `t` recent. */
function signatureOk(header: string, body: string, secret: string, toleranceS = 300): boolean {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=') as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceS || !/^[0-9a-f]{64}$/.test(parts.v1 ?? '')) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(Buffer.from(parts.v1!, 'hex'), expected);
}

interface WebhookEvent {
  readonly id: string;
  readonly event: string;
  readonly campaign: string;
  readonly state: string;
  readonly step?: number;
  readonly counts: { total: number; upgraded: number; skipped: number; failed: number };
}

/**
 * A webhook receiver as a service of the operator's would run one: it checks each delivery's
 * signature, answers 200, keeps each `Upshift-Event-Id` once (deliveries are at least once) and
 * prints the events in the order they were recorded (ids count up; two recorded in the same
 * step may arrive in either order).
 */
async function startReceiver(
  secret: string,
  total: () => number,
): Promise<{ url: string; server: Server; ended: () => Promise<WebhookEvent>; printHeld: () => void }> {
  const seen = new Set<string>();
  const held = new Map<number, WebhookEvent & { line: string }>();
  let next = 1;
  let onEnd: ((e: WebhookEvent) => void) | undefined;
  const print = (e: WebhookEvent) => {
    const c = e.counts;
    // `step` is 0-based, as the status hash's `rolloutStep`.
    const step = e.step === undefined ? '' : ` step ${e.step + 1}/${total()}`;
    return `  webhook ${e.event.padEnd(14)} ${e.campaign}${step}: state ${e.state}, upgraded ${c.upgraded}/${c.total}, skipped ${c.skipped}, failed ${c.failed}; id ${e.id}, signature ok`;
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const ok = signatureOk(String(req.headers['upshift-signature'] ?? ''), body, secret);
      const id = String(req.headers['upshift-event-id'] ?? '');
      // Refused (400: Upshift tries again) and said at once: a demo that shows nothing would hide it.
      if (!ok) {
        res.writeHead(400).end();
        return void console.log(`  webhook refused: the signature of ${id} does not verify`);
      }
      let e: WebhookEvent;
      try {
        e = JSON.parse(body) as WebhookEvent;
      } catch (err) {
        // Signed but not JSON: said, never a crash of the demo's process.
        res.writeHead(400).end();
        return void console.log(`  webhook refused: the body of ${id} is not JSON (${(err as Error).message})`);
      }
      res.writeHead(200).end();
      if (seen.has(id)) return;
      seen.add(id);
      held.set(Number(id.slice(id.lastIndexOf(':') + 1)), { ...e, line: print(e) });
      for (let h = held.get(next); h !== undefined; h = held.get(next)) {
        console.log(h.line);
        held.delete(next++);
        if (h.event === 'completed' || h.event === 'paused' || h.event === 'cancelled') onEnd?.(h);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/upshift`;
  return {
    url,
    server,
    // The next event after which the campaign does not go on by itself: completed, paused or cancelled.
    ended: () => new Promise<WebhookEvent>((resolve) => (onEnd = resolve)),
    // Lines held back behind an event that never came: printed anyway, with the gap named.
    printHeld: () => {
      for (const n of [...held.keys()].sort((a, b) => a - b)) {
        if (n !== next) console.log(`  (webhook events ${next}${n - 1 > next ? `-${n - 1}` : ''} not received)`);
        console.log(held.get(n)!.line);
        held.delete(n);
        next = n + 1;
      }
    },
  };
}

async function startWorkerProcess(env: Record<string, string>): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [cli, 'worker', '--concurrency', '25'], {
    env: { ...process.env, ...CREDENTIALS, [HOOK_SECRET_REF]: HOOK_SECRET, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('upshift worker ready') && resolve());
    proc.once('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready`)));
  });
  return proc;
}

function progressLine(statuses: CampaignStatus[]): string {
  return statuses
    .map((s) => {
      const done = s.upgraded + s.skipped + s.failed;
      return `${s.id.replace('demo-', '')} ${Math.floor((100 * done) / Math.max(1, s.total))}%`;
    })
    .join('  ');
}

/** One line of counts for a campaign, then its targets by outcome and reason. */
async function summarise(redis: Redis, prefix: string, id: string): Promise<void> {
  const s = (await readStatus(redis, prefix, id))!;
  const reasons = new Map<string, number>();
  for await (const line of streamReport(redis, prefix, id)) {
    const k = `${line.outcome}/${line.reason}`;
    reasons.set(k, (reasons.get(k) ?? 0) + 1);
  }
  console.log(`${s.id} (${s.operation}): ${s.total} targets, upgraded ${s.upgraded}, skipped ${s.skipped}, failed ${s.failed}; retries ${s.retries}, conflicts ${s.conflicts}`);
  for (const [k, n] of [...reasons].sort()) console.log(`    ${k.padEnd(40)} ${n}`);
}

async function main(): Promise<void> {
  const redisInfo = await getRedis();
  const prefix = `demo-${Date.now().toString(36)}`;
  console.log(`Redis: ${redisInfo.how}; key prefix ${prefix}`);
  const redis = new Redis(redisInfo.url, { maxRetriesPerRequest: null });
  const sub = new Redis(redisInfo.url, { maxRetriesPerRequest: null });
  const sandbox = await startSandbox({ latencyMs: 5, failRate: 0.03, throttleRate: 0.002, retryAfterS: 1, conflictRate: 0.2, seed: 42 });
  sandbox.load(fixtures());
  console.log(`Sandbox: ${sandbox.url} (3% 5xx, 0.2% 429; both with Retry-After: 1, which pauses that connection for 1 s; 20% Nected checksum conflicts, 5 ms latency)`);

  const workers: ChildProcess[] = [];
  const rollout = cohortCampaign();
  const receiver = await startReceiver(HOOK_SECRET, () => rollout.spec.rollout.steps.length + 1);
  try {
    const connections = sandboxConnections(sandbox.url, Object.keys(CREDENTIALS), {
      'demo-hook': { url: receiver.url, secretRef: HOOK_SECRET_REF, privateNetwork: true },
    });
    const env = { REDIS_URL: redisInfo.url, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: writeConnectionsFile(connections) };
    workers.push(await startWorkerProcess(env), await startWorkerProcess(env));
    console.log('Workers: 2 processes, concurrency 25 each\n');

    const list = campaigns();
    const pending = new Set(list.map((c) => c.spec.id));
    const allDone = new Promise<void>((resolve) => {
      sub.on('message', (_ch, msg: string) => {
        const event = JSON.parse(msg) as { id: string; state: string };
        if (event.state === 'completed') pending.delete(event.id);
        if (pending.size === 0) resolve();
      });
    });
    await sub.subscribe(eventsChannel(prefix));
    const started = Date.now();
    for (const c of list) {
      const res = await enqueueCampaign(c.spec, c.targets, { redis, prefix, connections });
      console.log(`enqueued ${res.campaignId}: ${res.total} targets (${c.spec.operation.type})`);
      const s = await readStatus(redis, prefix, res.campaignId);
      if (s?.state === 'completed') pending.delete(res.campaignId);
    }
    console.log('');
    const tty = process.stdout.isTTY;
    const timer = setInterval(async () => {
      const statuses = (await Promise.all(list.map((c) => readStatus(redis, prefix, c.spec.id)))).filter((s): s is CampaignStatus => s !== null);
      const line = progressLine(statuses);
      if (tty) process.stdout.write(`\r${line}   `);
      else console.log(line);
    }, 500);
    if (pending.size > 0) await allDone;
    clearInterval(timer);
    if (tty) process.stdout.write('\n');
    console.log(`\nall campaigns completed in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

    for (const c of list) await summarise(redis, prefix, c.spec.id);

    console.log(`\ncohort rollout ${rollout.spec.id}: internal tenants, then the free tier, then everyone (gate: auto);`);
    console.log(`its events go to the webhook receiver at ${receiver.url}, which checks each signature:`);
    const ended = receiver.ended();
    await enqueueCampaign(rollout.spec, rollout.targets, { redis, prefix, connections });
    // A receiver that hears nothing (a delivery refused, a secret missing) ends the demo with why,
    // rather than leaving it waiting; so does a rollout that paused or was cancelled.
    let silence: NodeJS.Timeout | undefined;
    const last = await Promise.race([
      ended,
      new Promise<never>((_, reject) => {
        silence = setTimeout(() => {
          receiver.printHeld();
          reject(new Error(`the webhook receiver heard no "completed" within 60 s; upshift notifications ${rollout.spec.id} says why`));
        }, 60_000);
      }),
    ]).finally(() => clearTimeout(silence));
    if (last.event !== 'completed') {
      const s = await readStatus(redis, prefix, rollout.spec.id);
      const why = s?.pausedReason ?? s?.cancelReason ?? 'OPERATOR';
      throw new Error(`cohort rollout ${rollout.spec.id} ${last.event} (state ${last.state}, ${why}); upshift status ${rollout.spec.id} shows why`);
    }
    // What `upshift status demo-cohorts` lists: each step's cohort, counts and failure ratio.
    const steps = (await readStatus(redis, prefix, rollout.spec.id))!.steps ?? [];
    for (const [i, st] of steps.entries()) {
      console.log(`    step ${i + 1}/${steps.length} ${st.cohort}: ${st.targets} targets, upgraded ${st.upgraded}, skipped ${st.skipped}, failed ${st.failed} (failure ratio ${st.failureRatio})`);
    }

    // Take one campaign back. Someone has renamed rule-3 by hand since: that one is left alone.
    // The sandbox's simulated concurrent edits are edits by someone else too, which the undo
    // would leave alone as well; they are turned off so that rule-3 is the one.
    sandbox.configure({ conflictRate: 0 });
    const rule3 = sandbox.state().nected!.workflows!.find((w) => w.entityId === 'rule-3')!;
    sandbox.load({ nected: { workflows: [{ entityId: rule3.entityId, graph: { ...rule3.graph, name: 'rule 3 (renamed by hand)' } }] } });
    const undoId = undoCampaignId('demo-nected');
    const undone = new Promise<void>((resolve) => {
      sub.on('message', (_ch, msg: string) => {
        const event = JSON.parse(msg) as { id: string; ended?: boolean };
        if (event.id === undoId && event.ended === true) resolve();
      });
    });
    const made = await undoCampaign('demo-nected', { redis, prefix, connections });
    console.log(`
upshift undo demo-nected: undo campaign ${made.campaignId}, ${made.total} targets`);
    if ((await readStatus(redis, prefix, undoId))?.finishedAt === undefined) await undone;
    await summarise(redis, prefix, undoId);
    const back = sandbox.state().nected!.workflows!.filter((w) => w.graph.settings !== undefined && (w.graph.settings as { auditIO?: boolean }).auditIO === (Number(w.entityId.slice(5)) % 25 === 0));
    console.log(`    ${back.length} of 300 workflows have their audit setting from before the campaign again (rule-3 kept the person's change)`);
    const stats = sandbox.stats();
    console.log(`\nsandbox: ${stats.requests} requests; injected ${stats.faults.failed} 5xx, ${stats.faults.throttled} 429, ${stats.faults.conflicts} conflicts`);
    if (process.env.REDIS_URL) {
      console.log(`\ninspect: UPSHIFT_PREFIX=${prefix} npx upshift report demo-alloy --outcome failed`);
    }
  } finally {
    // Each step on its own: one that throws must not leave a server or process behind, and the
    // receiver goes first (its open connections would hold the process).
    const step = async (what: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup: ${what}: ${(err as Error).message}`);
      }
    };
    await step('webhook receiver', () => {
      receiver.server.closeAllConnections();
      return new Promise<void>((resolve) => receiver.server.close(() => resolve()));
    });
    await step('workers', async () => {
      for (const w of workers) w.kill('SIGTERM');
      await Promise.all(workers.map((w) => (w.exitCode === null ? once(w, 'exit') : undefined)));
    });
    await step('sandbox', () => sandbox.close());
    await step('redis clients', () => {
      sub.disconnect();
      redis.disconnect();
    });
    await step('redis', () => redisInfo.stop());
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`demo failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
