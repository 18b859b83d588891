/**
 * undo: what undo capture (spec field `undo`, default true) costs, per operation. For each
 * operation, a campaign of BENCH_UNDO_TARGETS targets with `undo: true` and the same campaign
 * with `undo: false` on a fresh copy of the fleet, then the undo campaign of the first:
 *
 * - bytes kept per target: the `undo` field of each upgraded target's outcome record (its JSON),
 *   next to the whole record's JSON, read from Redis as `upshift undo` reads them (`scanRecords`);
 * - platform calls per target with undo on and off (the sandbox's request counter), and per
 *   target of the undo campaign; whether the undo put every target back (the sandbox's state).
 *
 * Byte and call counts, not timings: nothing here depends on the machine's speed. One worker
 * process at concurrency 20, sandbox in this process at 0 ms, no faults.
 */
import { enqueueCampaign, undoCampaign } from '../../src/producer/index.js';
import { SANDBOX_KEYS, startSandbox, type Sandbox, type SandboxFixtures } from '../../src/sandbox/index.js';
import { readStatus, scanRecords } from '../../src/shared/index.js';
import { sandboxConnections, writeConnectionsFile } from '../../scripts/lib/connections.js';
import { describeStatuses, dropPrefix, median, spawnWorker, stop, watchCampaigns, type BenchContext, type Child, type Scenario } from '../helpers.js';

const UNDO_TARGETS = Number(process.env.BENCH_UNDO_TARGETS ?? 200);
const UNDO_WORKER_CONCURRENCY = 20;
const COST_TARGETS = Number(process.env.BENCH_UNDO_COST_TARGETS ?? 1000);
const COST_ROUNDS = 5;

/** The operations as the scenario runs them; each campaign gets its own copy of `fleet(tag)`. */
type Case = { label: string; credentialRef: string; operation: Record<string, unknown>; fleet(tag: string, n: number): SandboxFixtures; targets(tag: string, n: number): Record<string, string | number>[] };

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * A Nected workflow graph with every part reference 004's schema describes (`UpdateWorkflowPayload`:
 * the trigger node `1`, a code node with input fields, the UI's add-node placeholder, edges with
 * their style and `data.edgeType`, settings, `dependencyMap`). The document's canonical request
 * body (`Update/update_workflow.json`) is an attachment the stored reference does not include, so
 * this is built from the schema: 3 nodes and 2 edges, 2.7 KB of JSON (results.json has the
 * measured size).
 */
export function referenceGraph(name: string): Record<string, unknown> {
  const position = (x: number, y: number) => ({ x, y });
  const field = (fieldName: string, order: number, dataType: string) => ({
    name: fieldName,
    dataType,
    executedValue: null,
    isCaseSensitive: false,
    isNullable: false,
    isOptional: false,
    keyAttribute: '',
    keySource: '',
    mapping: false,
    notSend: false,
    order,
    schemaId: '',
    sendNull: false,
    source: 'customInput',
    attribute: fieldName,
    value: null,
  });
  return {
    name,
    description: 'Scores a lead and routes it',
    startNode: '1',
    comment: 'routing v1',
    isEnabled: true,
    nodes: [
      {
        id: '1',
        type: 'trigger',
        position: position(0, 0),
        style: null,
        sourcePosition: 'bottom',
        targetPosition: 'top',
        draggable: false,
        data: { nodeType: 'apiTrigger', name: 'Start', status: 'success', rootId: '', sourceIds: null, isMergeNode: false, input: { leadId: field('leadId', 0, 'string'), score: field('score', 1, 'numeric') }, output: null, settings: null, executedValue: null },
      },
      {
        id: '2',
        type: 'codeNode',
        position: position(0, 150),
        style: null,
        sourcePosition: 'bottom',
        targetPosition: 'top',
        draggable: true,
        data: {
          nodeType: 'codeNode',
          name: 'scoreLead',
          entity: 'code',
          entityId: `${name}-code`,
          blockName: 'scoreLead',
          status: 'success',
          rootId: '1',
          sourceIds: ['1'],
          isMergeNode: false,
          switcher: null,
          conditions: null,
          input: { score: field('score', 0, 'numeric') },
          output: null,
          settings: { timeout: 30, language: 'JS', code: 'return { tier: $.score > 50 ? "hot" : "cold" };' },
          executedValue: { tier: 'hot' },
          runInLoop: { status: false, source: '', attribute: '', value: null },
        },
      },
      {
        id: '3',
        type: 'addNode',
        position: position(0, 300),
        style: null,
        sourcePosition: 'bottom',
        targetPosition: 'top',
        draggable: false,
        data: { nodeType: 'addNodeMd', name: 'Add', rootId: '1', sourceIds: ['2'], isMergeNode: false },
      },
    ],
    edges: [
      { id: 'e1-2', source: '1', target: '2', type: 'glowingEdge', animated: false, label: '', markerEnd: 'arrowclosed', sourceHandle: 'bottom', style: { stroke: '#B0B0B0', strokeWidth: 1 }, data: { edgeType: 'then', pathId: 'p1' } },
      { id: 'e2-3', source: '2', target: '3', type: 'glowingEdge', animated: false, label: '', markerEnd: 'arrowclosed', sourceHandle: 'bottom', style: { stroke: '#B0B0B0', strokeWidth: 1 }, data: { edgeType: 'then', pathId: 'p1' } },
    ],
    trigger: { type: 'api' },
    settings: { auditIO: false, dateFormat: 'in', timezone: 'Asia/Kolkata' },
    dependencyMap: [],
  };
}

const CASES: Case[] = [
  {
    label: 'alloy.upgradeWorkflow',
    credentialRef: 'BENCH_UNDO_ALLOY_KEY',
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-u' },
    fleet: (tag, n) => ({ alloy: { workflows: { 'wf-u': { latestVersion: 2 } }, installs: range(n).map((i) => ({ workflowId: 'wf-u', userId: `${tag}-${i}`, version: 1 })) } }),
    targets: (tag, n) => range(n).map((i) => ({ userId: `${tag}-${i}` })),
  },
  {
    label: 'conductor.upgradeExecution',
    credentialRef: 'BENCH_UNDO_CONDUCTOR_KEY',
    operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2, workflowInput: { region: 'us' } },
    fleet: (tag, n) => ({
      conductor: {
        definitions: [1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })),
        executions: range(n).map((i) => ({ workflowId: `${tag}-${i}`, workflowName: 'flow', workflowVersion: 1, status: 'RUNNING' as const, input: { region: 'eu', customerId: `cust-${i}`, plan: 'pro' } })),
      },
    }),
    targets: (tag, n) => range(n).map((i) => ({ workflowId: `${tag}-${i}` })),
  },
  {
    label: 'conductor.updateDefinition',
    credentialRef: 'BENCH_UNDO_CONDUCTOR_KEY',
    operation: {
      type: 'conductor.updateDefinition',
      ownerEmail: 'ops@acme.test',
      patch: [
        { op: 'replace', path: '/timeoutSeconds', value: 600 },
        { op: 'add', path: '/rateLimitConfig', value: { rateLimitKey: '${workflow.input.customerId}', concurrentExecLimit: 5 } },
      ],
    },
    fleet: (tag, n) => ({
      conductor: {
        definitions: range(n).map((i) => ({
          name: `${tag}-${i}`,
          version: 1,
          description: 'order fulfilment',
          tasks: [
            { name: 'reserve', taskReferenceName: 'reserve', type: 'SIMPLE' },
            { name: 'charge', taskReferenceName: 'charge', type: 'HTTP', inputParameters: { http_request: { uri: 'https://pay.example/charge', method: 'POST' } } },
            { name: 'ship', taskReferenceName: 'ship', type: 'SIMPLE' },
          ],
          inputParameters: ['orderId', 'customerId'],
          schemaVersion: 2,
          timeoutSeconds: 3600,
          timeoutPolicy: 'TIME_OUT_WF',
          ownerEmail: 'old@acme.test',
        })),
      },
    }),
    targets: (tag, n) => range(n).map((i) => ({ name: `${tag}-${i}`, version: 1 })),
  },
  {
    label: 'nected.updateWorkflow',
    credentialRef: 'BENCH_UNDO_NECTED_KEY',
    operation: {
      type: 'nected.updateWorkflow',
      branch: 'main',
      patch: [
        { op: 'replace', path: '/settings/auditIO', value: true },
        { op: 'replace', path: '/nodes/1/data/settings/timeout', value: 60 },
      ],
    },
    fleet: (tag, n) => ({ nected: { workflows: range(n).map((i) => ({ entityId: `${tag}-${i}`, branch: 'main', graph: referenceGraph(`lead routing ${i}`) })) } }),
    targets: (tag, n) => range(n).map((i) => ({ entityId: `${tag}-${i}` })),
  },
  {
    label: 'tallyfy.updateRun',
    credentialRef: 'BENCH_UNDO_TALLYFY_KEY',
    operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'migrated', tags: ['v2'] } },
    fleet: (tag, n) => ({ tallyfy: { runs: range(n).map((i) => ({ orgId: 'org', id: `${tag}-${i}`, name: `onboarding ${i}`, summary: 'customer onboarding', owner_id: 7, tags: ['v1'], folders: [] })) } }),
    targets: (tag, n) => range(n).map((i) => ({ runId: `${tag}-${i}` })),
  },
];

const KEYS: Record<string, string> = {
  BENCH_UNDO_ALLOY_KEY: SANDBOX_KEYS.alloy,
  BENCH_UNDO_CONDUCTOR_KEY: SANDBOX_KEYS.conductor,
  BENCH_UNDO_NECTED_KEY: SANDBOX_KEYS.nected,
  BENCH_UNDO_TALLYFY_KEY: SANDBOX_KEYS.tallyfy,
};

/** Fields a platform sets on every write itself: a revert cannot put them back, so they are left out of the comparison. */
const VOLATILE = new Set(['createTime', 'updateTime', 'last_updated', 'checksum']);
const comparable = (state: unknown): string => JSON.stringify(state, (k, v: unknown) => (VOLATILE.has(k) ? undefined : v));

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** Per-target bytes of the upgraded targets' records: the `undo` field's JSON and the whole record's. */
async function recordBytes(ctx: BenchContext, prefix: string, id: string) {
  const undo: number[] = [];
  const record: number[] = [];
  for await (const batch of scanRecords(ctx.redis, prefix, id, (m) => m.outcome === 'upgraded', 500)) {
    for (const r of batch) {
      if (r.json === undefined) continue;
      const kept = (JSON.parse(r.json) as { undo?: unknown }).undo;
      undo.push(kept === undefined ? 0 : bytes(JSON.stringify(kept)));
      record.push(bytes(r.json));
    }
  }
  const max = (xs: number[]) => (xs.length === 0 ? 0 : Math.max(...xs));
  return { records: record.length, undoBytesMedian: undo.length ? median(undo) : 0, undoBytesMax: max(undo), recordBytesMedian: record.length ? median(record) : 0, recordBytesMax: max(record) };
}

async function run(ctx: BenchContext) {
  const { redis, redisUrl, env } = ctx;
  const prefix = 'bench-undo';
  const n = UNDO_TARGETS;
  const sandbox: Sandbox = await startSandbox({ latencyMs: 0 });
  const connections = sandboxConnections(sandbox.url, Object.keys(KEYS));
  let worker: Child | undefined;
  try {
    await dropPrefix(redis, prefix);
    worker = await spawnWorker(UNDO_WORKER_CONCURRENCY, { ...env, ...KEYS, UPSHIFT_PREFIX: prefix, UPSHIFT_CONNECTIONS: writeConnectionsFile(connections) });

    /** Runs one campaign (made by `start`) to its end; returns the platform calls it made and its status. */
    const campaign = async (id: string, start: () => Promise<unknown>) => {
      const watch = await watchCampaigns(redisUrl, prefix, [id], 'ended');
      try {
        const callsBefore = sandbox.stats().requests;
        await start();
        await watch.wait(n * 20 + 60_000, async () => describeStatuses([await readStatus(redis, prefix, id)]));
        const status = (await readStatus(redis, prefix, id))!;
        // From the status hash (Redis's clock): enqueue to the last outcome.
        return { calls: sandbox.stats().requests - callsBefore, status, elapsedMs: (status.finishedAt ?? 0) - (status.createdAt ?? 0) };
      } finally {
        watch.close();
      }
    };

    const rows = [];
    for (const [i, c] of CASES.entries()) {
      // Ids of the same length, so the two campaigns' records differ only by what undo keeps.
      const on = `undo-keep-${i}`;
      const off = `undo-none-${i}`;
      sandbox.load(c.fleet(on, n));
      sandbox.load(c.fleet(off, n));
      const ownIds = new Set(c.targets(on, n).map((t) => String(Object.values(t)[0])));
      const before = ownState(sandbox.state(), ownIds);
      const spec = (id: string, undo: boolean) => ({ id, undo, connection: { baseUrl: sandbox.url, credentialRef: c.credentialRef }, operation: c.operation });
      const withUndo = await campaign(on, () => enqueueCampaign(spec(on, true), c.targets(on, n), { redis, prefix, connections }));
      const withoutUndo = await campaign(off, () => enqueueCampaign(spec(off, false), c.targets(off, n), { redis, prefix, connections }));
      const kept = await recordBytes(ctx, prefix, on);
      const plain = await recordBytes(ctx, prefix, off);
      const undone = await campaign(`${on}-undo`, () => undoCampaign(on, { redis, prefix, connections }));
      const restored = ownState(sandbox.state(), ownIds) === before;
      const perTarget = (calls: number) => Math.round((calls / n) * 1000) / 1000;
      rows.push({
        operation: c.label,
        targets: n,
        upgraded: withUndo.status.upgraded,
        upgradedWithoutUndo: withoutUndo.status.upgraded,
        ...kept,
        recordBytesMedianWithoutUndo: plain.recordBytesMedian,
        callsPerTargetUndoOn: perTarget(withUndo.calls),
        callsPerTargetUndoOff: perTarget(withoutUndo.calls),
        undoCampaign: { total: undone.status.total, upgraded: undone.status.upgraded, skipped: undone.status.skipped, failed: undone.status.failed, callsPerTarget: perTarget(undone.calls) },
        restoredToPreImage: c.label === 'alloy.upgradeWorkflow' ? null : restored,
      });
    }
    // What capture costs in time, for the operations whose capture does the most (digests of the
    // document, an inverse patch, one HSET before the write): the same campaign with undo on and
    // off, alternating which goes first, after one warm-up pair; the figure is the median of the
    // per-round ratios of throughput on / off, measured side by side. At 0 ms the platform costs
    // nothing and capture is all the difference; at 20 ms it is what a real platform leaves of it.
    const cost = [];
    for (const latencyMs of [0, 20]) {
      sandbox.configure({ latencyMs });
      for (const label of ['conductor.updateDefinition', 'nected.updateWorkflow']) {
        const c = CASES.find((x) => x.label === label)!;
        const targets = latencyMs === 0 ? COST_TARGETS : Math.ceil(COST_TARGETS / 4);
        const ratios: number[] = [];
        for (let round = -1; round < COST_ROUNDS; round++) {
          const ms: Record<string, number> = {};
          for (const undo of round % 2 === 0 ? [true, false] : [false, true]) {
            const id = `cost-${CASES.indexOf(c)}-${latencyMs}-${round + 1}-${undo ? 'on' : 'off'}`;
            sandbox.load(c.fleet(id, targets));
            const spec = { id, undo, connection: { baseUrl: sandbox.url, credentialRef: c.credentialRef }, operation: c.operation };
            ms[String(undo)] = (await campaign(id, () => enqueueCampaign(spec, c.targets(id, targets), { redis, prefix, connections }))).elapsedMs;
          }
          if (round >= 0) ratios.push(ms.false! / ms.true!);
        }
        cost.push({ operation: label, latencyMs, targets, rounds: COST_ROUNDS, throughputOnVsOff: Math.round(median(ratios) * 100) / 100, ratios: ratios.map((r) => Math.round(r * 100) / 100) });
      }
    }
    sandbox.configure({ latencyMs: 0 });
    const graph = referenceGraph('lead routing 0');
    return {
      cost,
      targetsPerOperation: n,
      workerConcurrency: UNDO_WORKER_CONCURRENCY,
      nectedGraph: { bytes: bytes(JSON.stringify(graph)), nodes: (graph.nodes as unknown[]).length, edges: (graph.edges as unknown[]).length },
      operations: rows,
    };
  } finally {
    if (worker) await stop(worker.proc);
    await sandbox.close();
    await dropPrefix(redis, prefix);
  }
}

/**
 * The records of a state that belong to the given target ids (each platform's tables, filtered),
 * without the fields every write sets, as text to compare.
 */
function ownState(state: SandboxFixtures, ids: ReadonlySet<string>): string {
  const out: Record<string, unknown> = {};
  const idOf = (r: Record<string, unknown>) => String(r.userId ?? r.workflowId ?? r.entityId ?? r.id ?? r.name);
  for (const [platform, tables] of Object.entries(state as Record<string, Record<string, unknown> | undefined>)) {
    for (const [table, rows] of Object.entries(tables ?? {})) {
      if (Array.isArray(rows)) out[`${platform}.${table}`] = (rows as Record<string, unknown>[]).filter((r) => ids.has(idOf(r)));
    }
  }
  return comparable(out);
}

export const undo: Scenario<Awaited<ReturnType<typeof run>>> = {
  name: 'undo',
  run,
  rows: (u) =>
    u.operations.map((o) => {
      const extra = Math.round((o.callsPerTargetUndoOn - o.callsPerTargetUndoOff) * 1000) / 1000;
      return `| undo capture, ${o.operation}, ${o.targets} targets: undo bytes / record bytes per target (median); platform calls per target | ${o.undoBytesMedian} B / ${o.recordBytesMedian} B; ${o.callsPerTargetUndoOn} calls | ${o.recordBytesMedianWithoutUndo} B record, ${o.callsPerTargetUndoOff} calls with \`undo: false\` | +${extra} calls |`;
    }).concat(
      u.cost.map(
        (c) =>
          `| undo capture, ${c.operation}, ${c.targets} targets, 1 worker x ${UNDO_WORKER_CONCURRENCY}, ${c.latencyMs} ms: throughput with undo on / off (median of ${c.rounds} side-by-side rounds: ${c.ratios.join(', ')}) | ${c.throughputOnVsOff} x | 1.00 (\`undo: false\`) | ${c.throughputOnVsOff} x |`,
      ),
    ),
};
