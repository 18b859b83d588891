import { describe, expect, it } from 'vitest';
import { inputError } from '../support/errors.js';
import { cohortOf, InputError, parseSpec, parseTargetLine, rolloutLimits, rolloutPlan, validateSpec } from '../../src/shared/index.js';
import { testConnections } from '../support/connections.js';

const base = {
  connection: { baseUrl: 'https://production.runalloy.com', credentialRef: 'ALLOY_API_KEY' },
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf_123' },
};
const connections = testConnections(base.connection.baseUrl);

describe('campaign spec', () => {
  it('applies the documented defaults', () => {
    const spec = validateSpec(base, 'spec', connections);
    expect(spec.connection.timeoutMs).toBe(10_000);
    expect(spec.retry).toEqual({ attempts: 5, backoffMs: 1000 });
    expect(spec.operation).toEqual({ type: 'alloy.upgradeWorkflow', workflowId: 'wf_123', apiVersion: '2025-09' });
  });

  it('names the line of a JSON syntax error', () => {
    const e = inputError(() => parseSpec('{\n  "id": "x",\n  oops\n}', 'c.json', connections));
    expect(e.line).toBe(3);
    expect(e.message).toMatch(/^c\.json, line 3: not valid JSON/);
  });

  it.each([
    ['a bad id', { ...base, id: 'has space' }, 'id'],
    ['a missing connection', { operation: base.operation }, 'connection'],
    ['a non-http baseUrl', { ...base, connection: { ...base.connection, baseUrl: 'ftp://x' } }, 'connection.baseUrl'],
    ['a baseUrl with a query', { ...base, connection: { ...base.connection, baseUrl: 'https://x/?a=1' } }, 'connection.baseUrl'],
    ['a credentialRef that is no variable name', { ...base, connection: { ...base.connection, credentialRef: 'A-B' } }, 'connection.credentialRef'],
    ['a timeout out of range', { ...base, connection: { ...base.connection, timeoutMs: 5 } }, 'connection.timeoutMs'],
    ['a timeout out of range, by name', { ...base, connection: { name: 'ALLOY_API_KEY', timeoutMs: 5 } }, 'connection.timeoutMs'],
    ['a connection name that is no name', { ...base, connection: 'not a name!' }, 'connection'],
    ['calls that may take over an hour a target', { ...base, connection: { ...base.connection, timeoutMs: 600_000 }, retry: { attempts: 7 } }, 'retry.attempts'],
    ['an unknown operation type', { ...base, operation: { type: 'alloy.nope' } }, 'operation.type'],
    ['a missing operation field', { ...base, operation: { type: 'alloy.upgradeWorkflow' } }, 'operation.workflowId'],
    ['a misspelt field', { ...base, retyr: {} }, ''],
    ['zero attempts', { ...base, retry: { attempts: 0 } }, 'retry.attempts'],
    ['a patch without operations', { ...base, operation: { type: 'nected.updateWorkflow', patch: [] } }, 'operation.patch'],
    ['a malformed patch op', { ...base, operation: { type: 'nected.updateWorkflow', patch: [{ op: 'replace', path: 'x', value: 1 }] } }, 'operation.patch[0].path'],
    ['tallyfy changes with nothing to change', { ...base, operation: { type: 'tallyfy.updateRun', orgId: 'o', changes: {} } }, 'operation.changes'],
    ['a bad ownerEmail', { ...base, operation: { type: 'conductor.updateDefinition', patch: [{ op: 'remove', path: '/x' }], ownerEmail: 'nope' } }, 'operation.ownerEmail'],
  ])('rejects %s, naming the field', (_name, spec, field) => {
    const e = inputError(() => validateSpec(spec, 'spec', connections));
    expect(e.field ?? '').toBe(field);
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.message).toContain(field === '' ? 'spec' : `field "${field}"`);
  });

  it('names the index of a bad inline target', () => {
    const e = inputError(() => validateSpec({ ...base, targets: 'nope' }, 'spec', connections));
    expect(e.field).toBe('targets');
  });
});

describe('campaign spec connection', () => {
  const resolved = { name: 'ALLOY_API_KEY', baseUrl: base.connection.baseUrl, credentialRef: 'ALLOY_API_KEY', privateNetwork: true };

  it('resolves a registered name, or a copy of a registered entry, to the registry\'s entry', () => {
    expect(validateSpec({ ...base, connection: 'ALLOY_API_KEY' }, 'spec', connections).connection).toEqual({ ...resolved, timeoutMs: 10_000 });
    expect(validateSpec({ ...base, connection: { name: 'ALLOY_API_KEY', timeoutMs: 5000 } }, 'spec', connections).connection).toEqual({ ...resolved, timeoutMs: 5000 });
    // The same origin and path, spelt differently, is the same endpoint.
    const copy = { baseUrl: 'HTTPS://production.runalloy.com:443/', credentialRef: 'ALLOY_API_KEY', timeoutMs: 2000 };
    expect(validateSpec({ ...base, connection: copy }, 'spec', connections).connection).toEqual({ ...resolved, timeoutMs: 2000 });
  });

  it.each([
    ['an unregistered name', 'nope'],
    ['a registered variable at another origin', { ...base.connection, baseUrl: 'https://elsewhere.example' }],
    ['a registered origin with another variable', { ...base.connection, credentialRef: 'AWS_SECRET_ACCESS_KEY' }],
  ])('refuses %s: CONNECTION_NOT_REGISTERED, field connection', (_name, connection) => {
    const e = inputError(() => validateSpec({ ...base, connection }, 'spec', connections));
    expect(e.code).toBe('CONNECTION_NOT_REGISTERED');
    expect(e.field).toBe('connection');
  });
});

describe('targets', () => {
  const parse = (line: string, type = 'alloy.upgradeWorkflow') => parseTargetLine(line, type, 'users.ndjson', 7);

  it('accepts the id field plus string/number extras, and hostile-but-legal ids', () => {
    expect(parse('{"userId":"u_1","tenant":"acme","tier":2}')).toEqual({ userId: 'u_1', tenant: 'acme', tier: 2 });
    for (const id of ['a?b', 'a#b', '%2F', 'a+b&c', 'spa ce', 'é日本', '...', 'x'.repeat(512)]) {
      expect(parse(JSON.stringify({ userId: id })).userId).toBe(id);
    }
  });

  it.each([
    ['not JSON', '{userId:1}', undefined, /not valid JSON/],
    ['not an object', '["u_1"]', undefined, /must be a JSON object with "userId"/],
    ['a missing id field', '{"user":"u_1"}', 'userId', /is required for alloy\.upgradeWorkflow/],
    ['a numeric id', '{"userId":12}', 'userId', /must be a string/],
    ['an empty id', '{"userId":""}', 'userId', /must not be empty/],
    ['a slash', '{"userId":"a/b"}', 'userId', /"\/" or "\\"/],
    ['a backslash', '{"userId":"a\\\\b"}', 'userId', /"\/" or "\\"/],
    ['a dot-dot id', '{"userId":".."}', 'userId', /must not be "\." or "\.\."/],
    ['a control character', '{"userId":"a\\nb"}', 'userId', /control characters/],
    ['a NUL', '{"userId":"a\\u0000b"}', 'userId', /control characters/],
    ['an over-long id', JSON.stringify({ userId: 'x'.repeat(513) }), 'userId', /at most 512/],
    ['a nested extra field', '{"userId":"u","meta":{"a":1}}', 'meta', /strings or numbers/],
  ])('rejects %s, naming line and field', (_name, line, field, message) => {
    const e = inputError(() => parse(line));
    expect(e.line).toBe(7);
    expect(e.field).toBe(field);
    expect(e.message).toMatch(message);
    expect(e.message).toMatch(/^users\.ndjson, line 7/);
  });

  it('checks typed extra fields of an operation', () => {
    expect(parse('{"name":"wf","version":2}', 'conductor.updateDefinition')).toEqual({ name: 'wf', version: 2 });
    const e = inputError(() => parse('{"name":"wf","version":"2"}', 'conductor.updateDefinition'));
    expect(e.field).toBe('version');
  });
});

describe('rollout plan', () => {
  const rollout = (steps: unknown[]) => validateSpec({ ...base, targets: [], rollout: { steps } }, 'spec', connections).rollout!;

  it('cohort steps take their matches, in the order given; the first match wins', () => {
    const r = rollout([{ where: { tier: 'internal' } }, { where: { tier: ['free', 'internal'], region: 'eu' } }]);
    expect(cohortOf(r, { tier: 'internal', region: 'eu' })).toBe(0);
    expect(cohortOf(r, { tier: 'free', region: 'eu' })).toBe(1);
    expect(cohortOf(r, { tier: 'free', region: 'us' })).toBeUndefined();
    expect(cohortOf(r, { tier: 'paid' })).toBeUndefined();
  });

  it('percent and count steps count within the rest; empty steps are left out; the rest left runs last', () => {
    const r = rollout([{ where: { tier: 'internal' } }, 10, { where: { tier: 'none' } }, { count: 5 }, { where: { tier: 'free' } }]);
    const { limits, plan } = rolloutPlan(r, [3, 0, 0, 0, 7], 40);
    expect(plan.map((p) => [p.at, p.rest, p.targets, p.label])).toEqual([
      [0, false, 3, 'tier=internal'],
      [1, true, 4, '10% of the rest'],
      [3, true, 1, '5 targets of the rest'],
      [4, false, 7, 'tier=free'],
      [5, true, 35, 'the rest'],
    ]);
    expect(limits).toEqual([3, 7, 8, 15, 50]);
  });

  it('without cohorts, the plan is the cumulative counts as before', () => {
    const r = rollout([10, { count: 50 }, 60]);
    const { limits, plan } = rolloutPlan(r, [], 100);
    expect(limits).toEqual(rolloutLimits(r, 100));
    expect(plan.map((p) => p.label)).toEqual(['10%', '50 targets', '60%', '100%']);
    expect(plan.every((p) => p.at === undefined)).toBe(true);
  });
});
