/**
 * Property-based tests of everything a user can hand the producer: the campaign spec, NDJSON
 * target lines, and a whole enqueue. Whatever comes in, the answer is a valid result or an
 * `InputError` that says where (field, line) — never another exception, and never a half-written
 * campaign in Redis.
 *
 * Every property counts the inputs it checked; the last test asserts the total (>= 10,000).
 * That is why this is one file over the 400-line limit: the counts live in this module, and vitest
 * isolates each test file (its own module instances), so no test could total properties in several files.
 */
import { Readable } from 'node:stream';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueCampaign, enqueueSourced, readNdjsonTargets } from '../../src/producer/index.js';
import { InputError, parseTargetLine, validateSpec, type CampaignSpec } from '../../src/shared/index.js';
import { deletePrefix, keysUnder, newRedis, testPrefix } from '../support/harness.js';
import { testConnections } from '../support/connections.js';

// A fixed seed keeps CI repeatable; FC_SEED=<n> explores others (a failure prints its seed).
fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261123) });

const RUNS = { arbitrarySpecs: 3000, singleMutations: 3000, multiMutations: 1500, targetLines: 3500, enqueues: 300 };
const checked: Record<keyof typeof RUNS, number> = { arbitrarySpecs: 0, singleMutations: 0, multiMutations: 0, targetLines: 0, enqueues: 0 };
/** How many inputs were accepted and rejected (so a property that only ever sees one kind shows in the log). */
const verdicts = { specAccepted: 0, specRejected: 0, lineAccepted: 0, lineRejected: 0 };

/* Shared hostile material -------------------------------------------------------------------- */

const HUGE = 'x'.repeat(100_000);
const HUGE_UNICODE = '\u{1F680}é\u202E'.repeat(25_000); // ~100 K UTF-16 units, emoji + RTL override
const CONTROL = ['\u0000', '\u0001', '\u0007', '\b', '\t', '\n', '\r', '\u001b', '\u001f', '\u007f', '\u0085', '\u009f'];
const ODD_UNICODE = ['\u2028', '\u2029', '\ufeff', '\u200d', '\u202e', '\ud800', '\udfff', '\ufffd', '\u{1F600}', 'ﷺ', 'é'];

/** Strings that have broken parsers and validators before. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('', ' ', '.', '..', '/', '\\', '%', '%2F', '%00', '${', '}', '__proto__', 'constructor', 'null', 'true', '0', HUGE, HUGE_UNICODE),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.array(fc.oneof(fc.constantFrom(...CONTROL, ...ODD_UNICODE), fc.string({ maxLength: 3 })), { maxLength: 8 }).map((p) => p.join('')),
);

/** Values of every type, JSON or not (a library caller can pass any JS value). */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(null, true, false, 0, -0, -1, 0.5, 1e308, -1e308, 2 ** 53 + 2, Number.NaN, Infinity, -Infinity, undefined, [], {}, [null], [[]], { '': '' }),
  hostileString,
  fc.integer(),
  fc.double(),
  fc.array(hostileString, { maxLength: 3 }),
  fc.dictionary(hostileString, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
);

/* Specs -------------------------------------------------------------------------------------- */

const connection = { baseUrl: 'https://api.example.com/prefix', credentialRef: 'ALLOY_KEY', timeoutMs: 5000 };

/** The registry every spec here is checked against: the base URLs the specs below use. */
const connections = testConnections(connection.baseUrl, 'http://127.0.0.1:8080', 'http://127.0.0.1:1');
/** Registered names (and names that are not), for the `connection: "<name>"` form. */
const connectionName: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...Object.keys(connections.connections), 'not-registered', 'ALLOY_KEY-9', 'alloy_key', 'constructor', '__proto__', 'toString'),
  hostileString,
);

/** One valid spec per operation, between them using every field the schema knows. */
const BASE_SPECS: readonly Record<string, unknown>[] = [
  {
    id: 'camp-1',
    name: 'Move onboarding to v3',
    connection,
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf_1', apiVersion: '2025-09' },
    retry: { attempts: 3, backoffMs: 100 },
    limits: [
      { key: 'tenant-${target.tenant}', concurrency: 2 },
      { key: '${connection.baseUrl}', concurrency: 50, rate: { max: 100, perMs: 1000 } },
    ],
    rollout: { steps: [1, 10, { count: 500 }, 100], maxFailureRatio: 0.05, minSamples: 20, gate: 'manual' },
    dryRun: false,
    verify: true,
    targets: [{ userId: 'u1', tenant: 'a' }, { userId: 'u2', tenant: 'b', tier: 2 }],
  },
  {
    connection: { baseUrl: 'http://127.0.0.1:8080', credentialRef: 'CONDUCTOR_KEY' },
    operation: { type: 'conductor.upgradeExecution', name: 'flow', version: 2, taskOutput: { a: 1 }, workflowInput: { b: [2] } },
    limits: [{ key: '${operation.name}', rate: { max: 5, perMs: 1000 } }],
    targets: { discover: { workflowName: 'flow', version: 1, status: ['RUNNING', 'PAUSED'], pageSize: 100 } },
  },
  {
    id: 'defs',
    connection,
    operation: {
      type: 'conductor.updateDefinition',
      patch: [
        { op: 'test', path: '/schemaVersion', value: 2 },
        { op: 'replace', path: '/timeoutSeconds', value: 60 },
        { op: 'move', path: '/a', from: '/b' },
        { op: 'copy', path: '/c', from: '/d' },
        { op: 'remove', path: '/e' },
        { op: 'add', path: '', value: {} },
      ],
      newVersion: true,
      ownerEmail: 'ops@example.com',
    },
    limits: [{ key: '${campaign.id}-${operation.ownerEmail}', concurrency: 1 }],
  },
  {
    connection,
    operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'x', summary: 's', owner_id: 3, tags: ['a'], folders: ['f'], prerun: [{}] } },
    dryRun: true,
    rollout: { steps: [{ count: 1 }, 50] },
  },
  {
    name: '',
    connection,
    operation: { type: 'nected.updateWorkflow', patch: [{ op: 'add', path: '/x', value: { deep: [1] } }], branch: 'dev', conflictRetries: 3 },
    retry: { attempts: 1, backoffMs: 0 },
  },
];

type Path = (string | number)[];

/** Every path into `v` (not the root itself), and every path to an object (the root included). */
function pathsOf(v: unknown, at: Path = [], out = { all: [] as Path[], objects: [[]] as Path[] }): typeof out {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.all.push([...at, i]);
      pathsOf(x, [...at, i], out);
    });
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      out.all.push([...at, k]);
      if (typeof x === 'object' && x !== null && !Array.isArray(x)) out.objects.push([...at, k]);
      pathsOf(x, [...at, k], out);
    }
  }
  return out;
}

/** The spec's own field naming: `limits[0].key`. */
const fieldOf = (path: Path): string => path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '');

/** Own property, even for `__proto__`. */
function put(obj: Record<string | number, unknown> | unknown[], key: string | number, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The object holding the last step of `path`; null when an earlier mutation replaced the way there. */
function parentAndKey(root: unknown, path: Path): { parent: Record<string | number, unknown> | null; key: string | number } {
  let node: unknown = root;
  for (const p of path.slice(0, -1)) {
    if (typeof node !== 'object' || node === null) return { parent: null, key: '' };
    node = (node as Record<string | number, unknown>)[p];
  }
  const parent = typeof node === 'object' && node !== null ? (node as Record<string | number, unknown>) : null;
  return { parent, key: path[path.length - 1]! };
}

type Mutation =
  | { kind: 'set'; path: Path; value: unknown }
  | { kind: 'delete'; path: Path }
  | { kind: 'extra'; at: Path; key: string; value: unknown };

/** Applies `m` to `spec` (in place); returns the path of the field it touched. */
function mutate(spec: Record<string, unknown>, m: Mutation): Path {
  if (m.kind === 'extra') {
    const { parent, key } = m.at.length === 0 ? { parent: spec, key: '' } : parentAndKey(spec, m.at);
    const node = m.at.length === 0 ? spec : parent?.[key];
    if (typeof node === 'object' && node !== null) put(node as Record<string, unknown>, m.key, m.value);
    return [...m.at, m.key];
  }
  if (m.path.length === 0) return [];
  const { parent, key } = parentAndKey(spec, m.path);
  if (parent === null) return m.path; // an earlier mutation replaced the way there
  if (m.kind === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  } else {
    put(parent, key, m.value);
  }
  return m.path;
}

const badUrl: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    'ftp://x',
    'http://user:pw@x',
    'http://user@x',
    'https://x/?q=1',
    'https://x/#f',
    'not a url',
    '',
    'http://',
    '//x/y',
    'javascript:alert(1)',
    'file:///etc/passwd',
    'http://[::1',
    'http://x:99999',
    'http://x\n.example/',
    ' http://x',
    'https://' + HUGE + '.com',
    'https://x/' + HUGE,
    'HTTP://EXAMPLE.COM',
    'http://ex ample.com',
    'http://x/%zz',
    'http://\u{1F680}.example/',
  ),
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  hostileString,
  hostileValue,
);

/** Limit keys built from the template grammar's own pieces, valid and not. */
const limitKey: fc.Arbitrary<unknown> = fc.oneof(
  fc
    .array(
      fc.oneof(
        fc.constantFrom(
          '${',
          '}',
          '$',
          '{',
          'target.',
          'operation.',
          '${target.tenant}',
          '${target.}',
          '${target.a.b}',
          '${target.__proto__}',
          '${operation.type}',
          '${env.HOME}',
          '${campaign.name}',
          '${campaign.id}',
          '${connection.baseUrl}',
          '${connection.credentialRef}',
          '${}',
          '${ target.tenant }',
          '${${target.tenant}}',
          '\u0000',
        ),
        hostileString,
      ),
      { maxLength: 6 },
    )
    .map((parts) => parts.join('')),
  fc.string({ minLength: 250, maxLength: 300 }),
  hostileValue,
);

/** One mutation of a base spec, aimed at any field it has (or at a few it should not have). */
const mutation = (spec: Record<string, unknown>): fc.Arbitrary<Mutation> => {
  const { all, objects } = pathsOf(spec);
  const anyPath = fc.constantFrom(...all);
  return fc.oneof(
    fc.record({ kind: fc.constant('set' as const), path: anyPath, value: hostileValue }),
    fc.record({ kind: fc.constant('delete' as const), path: anyPath }),
    fc.record({
      kind: fc.constant('extra' as const),
      at: fc.constantFrom(...objects),
      key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'extra', 'targetz', 'limit'), hostileString),
      value: hostileValue,
    }),
    fc.record({ kind: fc.constant('set' as const), path: fc.constant<Path>(['connection', 'baseUrl']), value: badUrl }),
    fc.record({ kind: fc.constant('set' as const), path: fc.constant<Path>(['connection', 'credentialRef']), value: hostileString }),
    fc.record({
      kind: fc.constant('set' as const),
      path: fc.constant<Path>(['connection']),
      value: fc.oneof(connectionName, fc.record({ name: connectionName, timeoutMs: fc.oneof(hostileValue, fc.integer({ min: 100, max: 600_000 })) }, { requiredKeys: [] })),
    }),
    fc.record({ kind: fc.constant('set' as const), path: fc.constant<Path>(['limits', 0, 'key']), value: limitKey }),
    fc.record({
      kind: fc.constant('set' as const),
      path: fc.constant<Path>(['operation', 'type']),
      value: fc.oneof(
        fc.constantFrom('alloy.upgradeWorkflow', 'conductor.upgradeExecution', 'conductor.updateDefinition', 'tallyfy.updateRun', 'nected.updateWorkflow'),
        hostileValue,
      ),
    }),
  );
};

/** A base spec and one mutation of it (the limits mutation gets a limits array to land in). */
/** A fresh copy of base spec `i`: properties mutate it in place, and fast-check replays runs while shrinking. */
function baseOf(i: number): Record<string, unknown> {
  const base = structuredClone(BASE_SPECS[i]!);
  if (base.limits === undefined) base.limits = [{ key: 'k', concurrency: 1 }];
  return base;
}

/** A base spec's index and mutations aimed at its fields; the property builds the spec afresh. */
const mutatedSpec = (count: { min: number; max: number }) =>
  fc.nat({ max: BASE_SPECS.length - 1 }).chain((i) =>
    fc.tuple(fc.constant(i), fc.array(mutation(baseOf(i)), { minLength: count.min, maxLength: count.max })),
  );

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `a` is `b`, or inside it, or contains it (on field boundaries). */
function related(a: string, b: string): boolean {
  const under = (x: string, y: string) => x === y || x.startsWith(`${y}.`) || x.startsWith(`${y}[`);
  return under(a, b) || under(b, a);
}

/**
 * Runs validateSpec and checks the outcome. Anything thrown must be an InputError whose message
 * says "spec" and names a field: `err.field` (also in the message), or, for a key the schema does
 * not know at the top level (field ""), the key itself; or the input is not an object at all.
 * A valid result must validate again to the same thing (defaults are a fixed point).
 */
function checkSpec(raw: unknown): { ok: true } | { ok: false; err: InputError } {
  let spec: CampaignSpec;
  try {
    spec = validateSpec(raw, 'spec', connections);
  } catch (err) {
    if (!(err instanceof InputError)) throw new Error(`validateSpec threw ${(err as Error)?.name}: ${(err as Error)?.message}`, { cause: err });
    expect(err.source).toBe('spec');
    expect(err.message.startsWith('spec')).toBe(true);
    if (err.field !== undefined && err.field !== '') {
      expect(err.message).toContain(`field "${err.field}"`);
    } else if (isPlainObject(raw)) {
      const unknown = Object.keys(raw).filter((k) => !['id', 'name', 'connection', 'operation', 'retry', 'limits', 'rollout', 'dryRun', 'verify', 'targets'].includes(k));
      expect(unknown.length, `no field named in: ${err.message.slice(0, 300)}`).toBeGreaterThan(0);
      expect(unknown.some((k) => err.message.includes(`"${k}"`)), err.message.slice(0, 300)).toBe(true);
    }
    verdicts.specRejected++;
    return { ok: false, err };
  }
  verdicts.specAccepted++;
  // The connection comes back resolved ({ name, baseUrl, ... }); as a spec names it, by name.
  expect(connections.connections[spec.connection.name]).toMatchObject({ baseUrl: spec.connection.baseUrl, credentialRef: spec.connection.credentialRef });
  const asInput = { ...spec, connection: { name: spec.connection.name, timeoutMs: spec.connection.timeoutMs } };
  const again = validateSpec(JSON.parse(JSON.stringify(asInput)), 'spec', connections);
  expect(JSON.stringify(again)).toBe(JSON.stringify(spec));
  return { ok: true };
}

describe('validateSpec: property-based', () => {
  it('the base specs are valid (so every failure below comes from a mutation)', () => {
    for (const spec of BASE_SPECS) expect(() => validateSpec(spec, 'spec', connections)).not.toThrow();
  });

  it(`arbitrary values and arbitrary shapes under the right keys: a spec or an InputError naming the field (${RUNS.arbitrarySpecs} runs)`, () => {
    const anyShape = fc.record(
      {
        id: hostileValue,
        name: hostileValue,
        connection: fc.oneof(
          hostileValue,
          connectionName,
          fc.record({ baseUrl: badUrl, credentialRef: hostileValue, timeoutMs: hostileValue }, { requiredKeys: [] }),
          fc.record({ name: connectionName, timeoutMs: hostileValue }, { requiredKeys: [] }),
        ),
        operation: fc.oneof(hostileValue, fc.dictionary(fc.constantFrom('type', 'workflowId', 'patch', 'orgId', 'changes', 'name', 'version'), hostileValue)),
        retry: hostileValue,
        limits: fc.oneof(hostileValue, fc.array(fc.record({ key: limitKey, concurrency: hostileValue, rate: hostileValue }, { requiredKeys: [] }), { maxLength: 6 })),
        rollout: hostileValue,
        dryRun: hostileValue,
        verify: hostileValue,
        targets: hostileValue,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.anything(), fc.json().map((t) => JSON.parse(t) as unknown), anyShape), (raw) => {
        checked.arbitrarySpecs++;
        checkSpec(raw);
      }),
      { numRuns: RUNS.arbitrarySpecs },
    );
  });

  it(`one mutation of a valid spec: the error names the mutated field (or its object) (${RUNS.singleMutations} runs)`, () => {
    fc.assert(
      fc.property(mutatedSpec({ min: 1, max: 1 }), ([i, [m]]) => {
        const spec = baseOf(i);
        checked.singleMutations++;
        const path = fieldOf(mutate(spec, m!));
        const res = checkSpec(spec);
        if (res.ok) return;
        const { field = '' } = res.err;
        if (field === '') return; // an unknown top-level key, checked by checkSpec
        // Changing the operation type makes the other operation fields (or discovery) wrong.
        if (path === 'operation.type') {
          expect(related(field, 'operation') || related(field, 'targets'), `${field} for ${path}`).toBe(true);
          return;
        }
        // Discovery and a staged rollout exclude each other: either side may be named.
        if (field === 'rollout' && path.startsWith('targets')) return;
        expect(related(field, path), `mutated ${path}, error names "${field}": ${res.err.message.slice(0, 200)}`).toBe(true);
      }),
      { numRuns: RUNS.singleMutations },
    );
  });

  it(`several mutations at once: still a spec or an InputError naming a field (${RUNS.multiMutations} runs)`, () => {
    fc.assert(
      fc.property(mutatedSpec({ min: 2, max: 5 }), ([i, ms]) => {
        const spec = baseOf(i);
        checked.multiMutations++;
        for (const m of ms) mutate(spec, m);
        checkSpec(spec);
      }),
      { numRuns: RUNS.multiMutations },
    );
  });
});

/* Target lines ------------------------------------------------------------------------------- */

const ID_RULES = (id: unknown): boolean =>
  typeof id === 'string' &&
  id.length >= 1 &&
  id.length <= 512 &&
  !/[\u0000-\u001f\u007f-\u009f/\\]/.test(id) &&
  id !== '.' &&
  id !== '..';

/** Text that is not JSON, JSON that is not a target, and targets at and past every rule's edge. */
const targetLine: fc.Arbitrary<string> = fc.oneof(
  hostileString,
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.json({ maxDepth: 3 }),
  fc.json({ maxDepth: 2, stringUnit: 'binary' }),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  // Objects with a userId of any shape, plus extra fields of any shape.
  fc
    .record(
      {
        userId: fc.oneof(hostileValue, hostileString, fc.string({ minLength: 510, maxLength: 514 }), fc.constantFrom(HUGE, 'ok', '...', 'a?b#c%2F&d+e f')),
        tenant: hostileValue,
        extra: fc.oneof(hostileValue, fc.string({ minLength: 1020, maxLength: 1030 })),
      },
      { requiredKeys: [] },
    )
    // A line is text: values JSON cannot write (cycles, BigInt) cannot be on one.
    .filter((o) => {
      try {
        JSON.stringify(o);
        return true;
      } catch {
        return false;
      }
    })
    .chain((o) => fc.constantFrom(JSON.stringify(o), JSON.stringify(o).slice(0, -1), `${JSON.stringify(o)} trailing`, ` \t${JSON.stringify(o)}\u00a0`)),
  // Control characters raw and escaped, inside and around the JSON.
  fc.tuple(fc.constantFrom(...CONTROL, ...ODD_UNICODE), fc.string({ maxLength: 10 })).map(([c, s]) => `{"userId":"${s}${c}"}`),
  fc.tuple(fc.constantFrom(...CONTROL, ...ODD_UNICODE), fc.string({ maxLength: 10 })).map(([c, s]) => JSON.stringify({ userId: `${s}${c}` })),
  fc.constantFrom(...CONTROL).map((c) => `${c}{"userId":"a"}${c}`),
  // Big and deep.
  fc.constantFrom(
    HUGE,
    JSON.stringify(HUGE),
    JSON.stringify({ userId: HUGE }),
    JSON.stringify({ userId: 'a', tenant: HUGE }),
    JSON.stringify({ userId: HUGE_UNICODE.slice(0, 512) }),
    JSON.stringify({ userId: 'a', [HUGE]: 1 }),
    '['.repeat(50_000) + ']'.repeat(50_000),
    '{"userId":"a","x":' + '['.repeat(50_000) + ']'.repeat(50_000) + '}',
    '{"userId":"a","x":' + '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000) + '}',
    '{"userId":"a","__proto__":{"polluted":1}}',
    '{"userId":"a","__proto__":"x"}',
    '{"userId":"a","constructor":{"prototype":{}}}',
    '{"userId":"a","userId":"b"}',
    '{"userId":"\\ud800"}',
    '{"userId":1e999}',
    '{"userId":"a","n":1e999}',
    '{"userId":"a","n":-0}',
    '\ufeff{"userId":"a"}',
  ),
);

describe('parseTargetLine: property-based', () => {
  it(`any line: a valid target or an InputError with that exact line (${RUNS.targetLines} runs)`, () => {
    fc.assert(
      fc.property(targetLine, fc.integer({ min: 1, max: 2 ** 31 }), (text, line) => {
        checked.targetLines++;
        let target;
        try {
          target = parseTargetLine(text, 'alloy.upgradeWorkflow', 'targets.ndjson', line);
        } catch (err) {
          if (!(err instanceof InputError)) throw new Error(`parseTargetLine threw ${(err as Error)?.name}: ${(err as Error)?.message}`, { cause: err });
          expect(err.line).toBe(line);
          expect(err.source).toBe('targets.ndjson');
          expect(err.message.startsWith(`targets.ndjson, line ${line}`)).toBe(true);
          verdicts.lineRejected++;
          return;
        }
        verdicts.lineAccepted++;
        // Accepted: the documented rules hold, and the target survives a round trip unchanged.
        expect(ID_RULES(target.userId), JSON.stringify(target.userId)?.slice(0, 100)).toBe(true);
        for (const [k, v] of Object.entries(target)) {
          if (k === 'userId') continue;
          expect(typeof v === 'number' ? Number.isFinite(v) : typeof v === 'string' && v.length <= 1024).toBe(true);
        }
        const again = parseTargetLine(JSON.stringify(target), 'alloy.upgradeWorkflow', 'targets.ndjson', line);
        expect(JSON.stringify(again)).toBe(JSON.stringify(target)); // (JSON has no -0: compared as text)
      }),
      { numRuns: RUNS.targetLines },
    );
  });
});

/* Enqueue ------------------------------------------------------------------------------------ */

interface BadLine {
  /** The value for an iterable; the raw text for NDJSON (when it cannot be JSON). */
  value: unknown;
  text?: string;
  field: string | undefined;
  needsLimits?: boolean;
}

const BAD_LINES: readonly BadLine[] = [
  { value: { user: 'x' }, field: 'userId' },
  { value: { userId: 5 }, field: 'userId' },
  { value: { userId: '' }, field: 'userId' },
  { value: { userId: 'a/b' }, field: 'userId' },
  { value: { userId: 'a\\b' }, field: 'userId' },
  { value: { userId: '..' }, field: 'userId' },
  { value: { userId: '.' }, field: 'userId' },
  { value: { userId: 'a\nb' }, field: 'userId' },
  { value: { userId: 'a\r\nb' }, field: 'userId' },
  { value: { userId: 'a\u0000b' }, field: 'userId' },
  { value: { userId: '\u007f' }, field: 'userId' },
  { value: { userId: 'x'.repeat(513) }, field: 'userId' },
  { value: { userId: HUGE }, field: 'userId' },
  { value: { userId: 'ok', extra: {} }, field: 'extra' },
  { value: { userId: 'ok', extra: null }, field: 'extra' },
  { value: { userId: 'ok', extra: true }, field: 'extra' },
  { value: { userId: 'ok', extra: ['a'] }, field: 'extra' },
  { value: { userId: 'ok', extra: 'x'.repeat(1025) }, field: 'extra' },
  { value: null, field: undefined },
  { value: [], field: undefined },
  { value: 'u1', field: undefined },
  { value: 5, field: undefined },
  { value: { userId: 'ok' }, field: 'limits[0].key', needsLimits: true },
  { value: { userId: 'ok', tenant: '' }, field: 'limits[0].key', needsLimits: true },
  { value: undefined, text: '{"userId":', field: undefined },
  { value: undefined, text: '{userId: "a"}', field: undefined },
  { value: undefined, text: '{"userId":"a"} {"userId":"b"}', field: undefined },
  { value: undefined, text: '\u0000', field: undefined },
];

const validId = fc
  .oneof(fc.string({ minLength: 1, maxLength: 20 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }), fc.constantFrom('a?b', '#', '%2F', 'a&b=c', '+', ' x ', '...'))
  .filter(ID_RULES);

describe('enqueue: property-based, against Redis', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = newRedis();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it(`one invalid target among valid ones: InputError with its line and field, nothing written (${RUNS.enqueues} runs)`, async () => {
    const scenario = fc
      .record({
        withLimits: fc.boolean(),
        ndjson: fc.boolean(),
        withId: fc.boolean(),
        chunkSize: fc.integer({ min: 1, max: 4 }),
        before: fc.array(fc.tuple(validId, fc.constantFrom('a', 'b', 'c')), { maxLength: 20 }),
        after: fc.array(fc.tuple(validId, fc.constantFrom('a', 'b')), { maxLength: 5 }),
        blanks: fc.array(fc.constantFrom('', ' ', '\t'), { maxLength: 20 }),
        badIndex: fc.nat({ max: BAD_LINES.length - 1 }),
      })
      .filter(({ withLimits, ndjson, badIndex }) => {
        const bad = BAD_LINES[badIndex]!;
        return (withLimits || !bad.needsLimits) && (ndjson || bad.text === undefined);
      });
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        checked.enqueues++;
        const prefix = testPrefix();
        const bad = BAD_LINES[s.badIndex]!;
        const good = s.before.map(([userId, tenant]) => ({ userId, tenant }));
        const tail = s.after.map(([userId, tenant]) => ({ userId, tenant }));
        const spec = {
          ...(s.withId ? { id: 'prop' } : {}),
          connection: { baseUrl: 'http://127.0.0.1:1', credentialRef: 'ALLOY_KEY' },
          operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' },
          ...(s.withLimits ? { limits: [{ key: 'tenant-${target.tenant}', concurrency: 2 }] } : {}),
        };
        let expectedLine: number;
        let run: Promise<unknown>;
        if (s.ndjson) {
          // Blank lines are skipped but counted, as a text editor counts them.
          const lines: string[] = [];
          const blanks = [...s.blanks];
          for (const t of good) {
            if (blanks.length > 0 && blanks.length % 2 === 0) lines.push(blanks.pop()!);
            lines.push(JSON.stringify(t));
          }
          while (blanks.length > 0) lines.push(blanks.pop()!);
          lines.push(bad.text ?? JSON.stringify(bad.value));
          expectedLine = lines.length;
          lines.push(...tail.map((t) => JSON.stringify(t)));
          const input = Readable.from([lines.join('\n') + '\n']);
          run = enqueueSourced(validateSpec(spec, 'spec', connections), readNdjsonTargets(input, 'users.ndjson'), { redis, prefix, connections, source: 'users.ndjson', chunkSize: s.chunkSize });
        } else {
          expectedLine = good.length + 1;
          run = enqueueCampaign(spec, [...good, bad.value, ...tail], { redis, prefix, connections, chunkSize: s.chunkSize });
        }
        try {
          const err = await run.then(
            () => new Error('enqueue accepted an invalid target'),
            (e: unknown) => e,
          );
          if (!(err instanceof InputError)) throw err;
          expect(err.line).toBe(expectedLine);
          expect(err.field).toBe(bad.field);
          expect(err.source).toBe(s.ndjson ? 'users.ndjson' : 'targets');
          expect(await keysUnder(redis, prefix)).toEqual([]);
        } finally {
          await deletePrefix(redis, prefix);
        }
      }),
      { numRuns: RUNS.enqueues },
    );
  });
});

describe('total', () => {
  it('checked at least 10,000 generated inputs', () => {
    const total = Object.values(checked).reduce((a, b) => a + b, 0);
    console.log(`generated inputs checked: ${JSON.stringify({ ...checked, total })}; verdicts: ${JSON.stringify(verdicts)}`);
    expect(checked).toEqual(RUNS);
    expect(total).toBeGreaterThanOrEqual(10_000);
  });
});
