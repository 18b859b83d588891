import { describe, expect, it } from 'vitest';
import { InputError, parseSpec, parseTargetLine, validateSpec } from '../../src/shared/index.js';

const base = {
  connection: { baseUrl: 'https://production.runalloy.com', credentialRef: 'ALLOY_API_KEY' },
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf_123' },
};

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}

describe('campaign spec', () => {
  it('applies the documented defaults', () => {
    const spec = validateSpec(base);
    expect(spec.connection.timeoutMs).toBe(10_000);
    expect(spec.retry).toEqual({ attempts: 5, backoffMs: 1000 });
    expect(spec.operation).toEqual({ type: 'alloy.upgradeWorkflow', workflowId: 'wf_123', apiVersion: '2025-09' });
  });

  it('names the line of a JSON syntax error', () => {
    const e = inputError(() => parseSpec('{\n  "id": "x",\n  oops\n}', 'c.json'));
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
    ['an unknown operation type', { ...base, operation: { type: 'alloy.nope' } }, 'operation.type'],
    ['a missing operation field', { ...base, operation: { type: 'alloy.upgradeWorkflow' } }, 'operation.workflowId'],
    ['a misspelt field', { ...base, retyr: {} }, ''],
    ['zero attempts', { ...base, retry: { attempts: 0 } }, 'retry.attempts'],
    ['a patch without operations', { ...base, operation: { type: 'nected.updateWorkflow', patch: [] } }, 'operation.patch'],
    ['a malformed patch op', { ...base, operation: { type: 'nected.updateWorkflow', patch: [{ op: 'replace', path: 'x', value: 1 }] } }, 'operation.patch[0].path'],
    ['tallyfy changes with nothing to change', { ...base, operation: { type: 'tallyfy.updateRun', orgId: 'o', changes: {} } }, 'operation.changes'],
    ['a bad ownerEmail', { ...base, operation: { type: 'conductor.updateDefinition', patch: [{ op: 'remove', path: '/x' }], ownerEmail: 'nope' } }, 'operation.ownerEmail'],
  ])('rejects %s, naming the field', (_name, spec, field) => {
    const e = inputError(() => validateSpec(spec));
    expect(e.field ?? '').toBe(field);
    expect(e.message).toContain(field === '' ? 'spec' : `field "${field}"`);
  });

  it('names the index of a bad inline target', () => {
    const e = inputError(() => validateSpec({ ...base, targets: 'nope' }));
    expect(e.field).toBe('targets');
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
