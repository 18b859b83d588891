import { describe, expect, it } from 'vitest';
import { classifyError, encodeCarry, operationFor, UpshiftError, validateSpec, type HttpRequest, type HttpResponse } from '../../src/shared/index.js';
import { patchHolds } from '../../src/shared/operations/patch.js';
import { digest } from '../../src/shared/operations/undo.js';
import { testConnections } from '../support/connections.js';

const connections = testConnections('https://platform.test');

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

/** Runs an operation against scripted answers, recording every request it makes. */
async function run(
  type: string,
  operation: Record<string, unknown>,
  target: Record<string, string | number>,
  replies: Reply[],
  verify = false,
  captureUndo = false,
  earlier: unknown = undefined,
) {
  // An undo operation runs the original operation's revert: checked by the original's schema.
  const base = type.startsWith('undo:') ? type.slice('undo:'.length) : type;
  const spec = validateSpec({
    connection: { baseUrl: 'https://platform.test', credentialRef: 'KEY' },
    operation: { type: base, ...operation },
  }, 'spec', connections);
  const sent: HttpRequest[] = [];
  let conflicts = 0;
  const kept: unknown[] = [];
  const queue = [...replies];
  const result = await operationFor(type)
    .apply({
      operation: base === type ? spec.operation : { ...spec.operation, type, undoOf: 'c-1' },
      target,
      credential: () => 'sekret',
      onConflict: () => void conflicts++,
      verify,
      captureUndo,
      keep: async (k) => void kept.push(k),
      earlier,
      send: async (req): Promise<HttpResponse> => {
        sent.push(req);
        const r = queue.shift();
        if (!r) throw new Error('no scripted reply left');
        const text = r.body === undefined ? '' : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
        return { status: r.status, headers: r.headers ?? {}, text, truncated: false };
      },
    })
    .then(
      (value) => ({ value, error: undefined }),
      (error: unknown) => ({ value: undefined, error: error as UpshiftError }),
    );
  return { ...result, sent, conflicts, kept };
}

describe('alloy.upgradeWorkflow', () => {
  const op = { workflowId: 'wf 1' };
  it('sends the documented request', async () => {
    const { value, sent } = await run('alloy.upgradeWorkflow', op, { userId: 'u?1' }, [{ status: 200, body: { upgraded: true } }]);
    expect(value).toEqual({ outcome: 'upgraded', reason: 'UPGRADED' });
    expect(sent).toEqual([
      {
        method: 'PUT',
        segments: ['workflows', 'wf 1', 'upgrade'],
        query: { userId: 'u?1' },
        headers: { authorization: 'bearer sekret', 'x-api-version': '2025-09', accept: 'application/json' },
      },
    ]);
  });
  it.each([
    [400, 'REINSTALL_REQUIRED', false],
    [401, 'UNAUTHORIZED', false],
    [403, 'FORBIDDEN', false],
    [404, 'NOT_FOUND', false],
    [409, 'STATE_CONFLICT', false],
    [422, 'INVALID_REQUEST', false],
    [429, 'THROTTLED', true],
    [500, 'SERVER_ERROR', true],
  ] as const)('classifies %i as %s', async (status, code, retryable) => {
    const { error } = await run('alloy.upgradeWorkflow', op, { userId: 'u' }, [{ status, body: {} }]);
    expect(error).toBeInstanceOf(UpshiftError);
    expect([error!.code, error!.retryable]).toEqual([code, retryable]);
  });
  it('reads upgraded:false as skipped and a non-JSON 200 as unexpected', async () => {
    expect((await run('alloy.upgradeWorkflow', op, { userId: 'u' }, [{ status: 200, body: { upgraded: false } }])).value?.reason).toBe('NOT_UPGRADED');
    expect((await run('alloy.upgradeWorkflow', op, { userId: 'u' }, [{ status: 200, body: '<html>' }])).error?.code).toBe('UNEXPECTED_RESPONSE');
  });
});

describe('conductor.upgradeExecution', () => {
  const op = { name: 'flow', version: 3, workflowInput: { a: 1 } };
  const exec = (status: string, version = 2, name = 'flow') => ({ status: 200, body: { workflowId: 'e1', workflowName: name, workflowVersion: version, status } });

  it('reads the execution, then upgrades it', async () => {
    const { value, sent } = await run('conductor.upgradeExecution', op, { workflowId: 'e/1' }, [exec('RUNNING'), { status: 200 }]);
    expect(value?.reason).toBe('UPGRADED');
    expect(sent[0]).toMatchObject({ method: 'GET', segments: ['api', 'workflow', 'e/1'], query: { includeTasks: 'false' }, headers: { 'x-authorization': 'sekret' } });
    expect(sent[1]).toMatchObject({ method: 'POST', segments: ['api', 'workflow', 'e/1', 'upgrade'], json: { name: 'flow', version: 3, workflowInput: { a: 1 } } });
  });
  it.each([
    ['COMPLETED', 2, 'flow', 'NOT_RUNNING'],
    ['TERMINATED', 2, 'flow', 'NOT_RUNNING'],
    ['RUNNING', 3, 'flow', 'ALREADY_CURRENT'],
  ])('skips a %s execution on v%i of %s as %s without upgrading', async (status, version, name, reason) => {
    const { value, sent } = await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [exec(status, version, name)]);
    expect(value).toEqual({ outcome: 'skipped', reason });
    expect(sent).toHaveLength(1);
  });
  it('fails an execution of another workflow', async () => {
    expect((await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [exec('RUNNING', 2, 'other')])).error?.code).toBe('WRONG_WORKFLOW');
  });
  it('reads again after a 409 and skips an execution that ended meanwhile', async () => {
    const { value, sent } = await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [exec('RUNNING'), { status: 409, body: { message: 'not running' } }, exec('COMPLETED')]);
    expect(value?.reason).toBe('NOT_RUNNING');
    expect(sent).toHaveLength(3);
  });
  it('fails with the 400 when the second read changes nothing', async () => {
    const { error } = await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [exec('RUNNING'), { status: 400, body: { message: 'bad' } }, exec('RUNNING')]);
    expect(error?.code).toBe('INVALID_REQUEST');
  });
  it('fails a 404 read as NOT_FOUND', async () => {
    expect((await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [{ status: 404, body: { message: 'x' } }])).error?.code).toBe('NOT_FOUND');
  });
});

describe('conductor.updateDefinition', () => {
  const op = { patch: [{ op: 'replace', path: '/timeoutSeconds', value: 60 }], ownerEmail: 'ops@acme.test', newVersion: true };
  const def = { name: 'flow', version: 2, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'old@acme.test' };

  it('reads, patches and writes the whole definition', async () => {
    const { value, sent } = await run('conductor.updateDefinition', op, { name: 'flow', version: 2 }, [{ status: 200, body: def }, { status: 200 }]);
    expect(value?.reason).toBe('UPGRADED');
    expect(sent[0]).toMatchObject({ method: 'GET', segments: ['api', 'metadata', 'workflow', 'flow'], query: { version: '2' } });
    expect(sent[1]).toMatchObject({
      method: 'PUT',
      segments: ['api', 'metadata', 'workflow'],
      query: { overwrite: 'true', newVersion: 'true' },
      json: { ...def, timeoutSeconds: 60, ownerEmail: 'ops@acme.test' },
    });
  });
  it('skips a no-op patch, fails a failing test op and an unresolvable path', async () => {
    expect((await run('conductor.updateDefinition', op, { name: 'flow' }, [{ status: 200, body: { ...def, timeoutSeconds: 60 } }])).value?.reason).toBe('ALREADY_CURRENT');
    const test = { ...op, patch: [{ op: 'test', path: '/timeoutSeconds', value: 5 }, ...op.patch] };
    expect((await run('conductor.updateDefinition', test, { name: 'flow' }, [{ status: 200, body: def }])).error?.code).toBe('PRECONDITION_FAILED');
    const bad = { ...op, patch: [{ op: 'remove', path: '/nope/deeper' }] };
    expect((await run('conductor.updateDefinition', bad, { name: 'flow' }, [{ status: 200, body: def }])).error?.code).toBe('PATCH_NOT_APPLICABLE');
  });
  it('keys targets by name and version', () => {
    const m = operationFor('conductor.updateDefinition');
    expect(m.targetKey({ name: 'flow' })).toBe('flow');
    expect(m.targetKey({ name: 'flow', version: 3 })).toBe('flow@3');
  });
});

describe('tallyfy.updateRun', () => {
  const op = { orgId: 'org 1', changes: { name: 'New', tags: ['t1'] } };
  it('sends the documented headers and body', async () => {
    const { value, sent } = await run('tallyfy.updateRun', op, { runId: 'r#1' }, [{ status: 200, body: { data: { id: 'r#1' } } }]);
    expect(value?.reason).toBe('UPGRADED');
    expect(sent[0]).toEqual({
      method: 'PUT',
      segments: ['organizations', 'org 1', 'runs', 'r#1'],
      headers: { authorization: 'Bearer sekret', accept: 'application/json', 'x-tallyfy-client': 'APIClient' },
      json: { name: 'New', tags: ['t1'] },
    });
  });
  it.each([
    [400, 'INVALID_REQUEST'],
    [403, 'FORBIDDEN'],
    [404, 'NOT_FOUND'],
    [422, 'INVALID_REQUEST'],
    [503, 'SERVER_ERROR'],
  ] as const)('classifies %i as %s', async (status, code) => {
    expect((await run('tallyfy.updateRun', op, { runId: 'r' }, [{ status, body: { message: 'x' } }])).error?.code).toBe(code);
  });
  it('treats a 200 without data as unexpected', async () => {
    expect((await run('tallyfy.updateRun', op, { runId: 'r' }, [{ status: 200, body: { error: 'nope' } }])).error?.code).toBe('UNEXPECTED_RESPONSE');
  });
});

describe('nected.updateWorkflow', () => {
  const op = { patch: [{ op: 'replace', path: '/name', value: 'v2' }], branch: 'dev', conflictRetries: 2 };
  const graph = (checksum: string, name = 'v1') => ({ status: 200, body: { code: 'success', data: { name, nodes: [], edges: [], checksum } } });

  it('reads, patches and sends the full graph with the checksum and branch', async () => {
    const { value, sent } = await run('nected.updateWorkflow', op, { entityId: 'w1' }, [graph('c1'), { status: 200, body: { data: { checksum: 'c2' } } }]);
    expect(value?.reason).toBe('UPGRADED');
    expect(sent[0]).toMatchObject({ method: 'GET', segments: ['dev', 'v1', 'workflow', 'w1'], headers: { 'nected-api-key': 'sekret', 'nected-branch': 'dev' } });
    expect(sent[1]).toMatchObject({ method: 'PATCH', json: { name: 'v2', nodes: [], edges: [], checksum: 'c1' } });
  });
  it('fetches, patches and sends again on a stale checksum (409 or 400 naming it), counting conflicts', async () => {
    const r = await run('nected.updateWorkflow', op, { entityId: 'w1' }, [
      graph('c1'),
      { status: 409, body: { message: 'stale' } },
      graph('c2'),
      { status: 400, body: { message: 'checksum mismatch' } },
      graph('c3'),
      { status: 200, body: { data: { checksum: 'c4' } } },
    ]);
    expect(r.value?.reason).toBe('UPGRADED');
    expect(r.conflicts).toBe(2);
    expect(r.sent[5]).toMatchObject({ json: { checksum: 'c3' } });
  });
  it('gives up after conflictRetries rounds', async () => {
    const stale = { status: 409, body: {} };
    const r = await run('nected.updateWorkflow', op, { entityId: 'w1' }, [graph('a'), stale, graph('b'), stale, graph('c'), stale]);
    expect(r.error?.code).toBe('CONFLICT_RETRIES_EXHAUSTED');
    expect(r.conflicts).toBe(3);
  });
  it('raises each stale checksum as CHECKSUM_CONFLICT, and ends with the last one as the cause', async () => {
    const stale = { status: 400, body: { message: 'checksum mismatch' } };
    const r = await run('nected.updateWorkflow', op, { entityId: 'w1' }, [graph('a'), stale, graph('b'), stale, graph('c'), stale]);
    expect(r.error?.code).toBe('CONFLICT_RETRIES_EXHAUSTED');
    expect(r.error?.cause).toMatchObject({ code: 'CHECKSUM_CONFLICT', retryable: true, status: 400 });
    expect(r.error?.message).toMatch(/last answer: CHECKSUM_CONFLICT: nected update workflow: HTTP 400 .*checksum mismatch/);
  });
  it('fails a 400 that does not name the checksum, and skips a no-op patch', async () => {
    expect((await run('nected.updateWorkflow', op, { entityId: 'w' }, [graph('a'), { status: 400, body: { message: 'bad node' } }])).error?.code).toBe('INVALID_REQUEST');
    expect((await run('nected.updateWorkflow', op, { entityId: 'w' }, [graph('a', 'v2')])).value?.reason).toBe('ALREADY_CURRENT');
  });
});

describe('verify: the read-back after an accepted write', () => {
  function expectMismatch(error: UpshiftError | undefined) {
    expect(error?.code).toBe('VERIFY_MISMATCH');
    expect(classifyError(error).retryable).toBe(false);
  }

  describe('conductor.upgradeExecution', () => {
    const op = { name: 'flow', version: 3 };
    const exec = (status: string, version: number, name = 'flow') => ({ status: 200, body: { workflowId: 'e', workflowName: name, workflowVersion: version, status } });
    it('makes no extra call without verify', async () => {
      const { value, sent } = await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [exec('RUNNING', 2), { status: 200 }]);
      expect(value?.reason).toBe('UPGRADED');
      expect(sent.map((r) => r.method)).toEqual(['GET', 'POST']);
    });
    it('reads the execution again and accepts the new version, even on an execution that ended since', async () => {
      const r = await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [exec('RUNNING', 2), { status: 200 }, exec('COMPLETED', 3)], true);
      expect(r.value?.reason).toBe('UPGRADED');
      expect(r.sent.map((q) => q.method)).toEqual(['GET', 'POST', 'GET']);
      expect(r.sent[2]).toMatchObject({ segments: ['api', 'workflow', 'e'] });
    });
    it('fails when the execution reads back at the old version', async () => {
      expectMismatch((await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [exec('RUNNING', 2), { status: 200 }, exec('RUNNING', 2)], true)).error);
    });
  });

  describe('conductor.updateDefinition', () => {
    const op = { patch: [{ op: 'test', path: '/timeoutSeconds', value: 0 }, { op: 'replace', path: '/timeoutSeconds', value: 60 }], ownerEmail: 'ops@acme.test' };
    const def = { name: 'flow', version: 2, tasks: [], timeoutSeconds: 0, ownerEmail: 'old@acme.test', updateTime: 1 };
    it('makes no extra call without verify', async () => {
      const { value, sent } = await run('conductor.updateDefinition', op, { name: 'flow', version: 2 }, [{ status: 200, body: def }, { status: 200 }]);
      expect(value?.reason).toBe('UPGRADED');
      expect(sent.map((r) => r.method)).toEqual(['GET', 'PUT']);
    });
    it('reads the same version back, ignoring the fields the server rewrites (and the test op)', async () => {
      const after = { ...def, timeoutSeconds: 60, ownerEmail: 'ops@acme.test', updateTime: 2, updatedBy: 'ops' };
      const r = await run('conductor.updateDefinition', op, { name: 'flow', version: 2 }, [{ status: 200, body: def }, { status: 200 }, { status: 200, body: after }], true);
      expect(r.value?.reason).toBe('UPGRADED');
      expect(r.sent[2]).toMatchObject({ method: 'GET', segments: ['api', 'metadata', 'workflow', 'flow'], query: { version: '2' } });
    });
    it('with newVersion reads the latest version, whatever its number', async () => {
      const after = { ...def, version: 3, timeoutSeconds: 60, ownerEmail: 'ops@acme.test' };
      const r = await run('conductor.updateDefinition', { ...op, newVersion: true }, { name: 'flow', version: 2 }, [{ status: 200, body: def }, { status: 200 }, { status: 200, body: after }], true);
      expect(r.value?.reason).toBe('UPGRADED');
      expect(r.sent[2]).toMatchObject({ method: 'GET', segments: ['api', 'metadata', 'workflow', 'flow'] });
      expect(r.sent[2]!.query).toEqual({});
    });
    it('fails when the definition reads back unpatched', async () => {
      expectMismatch((await run('conductor.updateDefinition', op, { name: 'flow' }, [{ status: 200, body: def }, { status: 200 }, { status: 200, body: def }], true)).error);
    });
  });

  describe('nected.updateWorkflow', () => {
    const op = { patch: [{ op: 'replace', path: '/name', value: 'v2' }, { op: 'add', path: '/nodes/-', value: { id: 'n' } }] };
    const graph = (checksum: string, name: string, nodes: unknown[]) => ({ status: 200, body: { code: 'success', data: { entityId: 'w', name, nodes, edges: [], checksum } } });
    const ok = { status: 200, body: { data: { checksum: 'c2' } } };
    it('makes no extra call without verify', async () => {
      const { sent } = await run('nected.updateWorkflow', op, { entityId: 'w' }, [graph('c1', 'v1', []), ok]);
      expect(sent.map((r) => r.method)).toEqual(['GET', 'PATCH']);
    });
    it('reads the graph again and accepts it under its new checksum', async () => {
      const r = await run('nected.updateWorkflow', op, { entityId: 'w' }, [graph('c1', 'v1', []), ok, graph('c2', 'v2', [{ id: 'n' }])], true);
      expect(r.value?.reason).toBe('UPGRADED');
      expect(r.sent.map((q) => q.method)).toEqual(['GET', 'PATCH', 'GET']);
    });
    it('fails when the graph reads back without the change', async () => {
      expectMismatch((await run('nected.updateWorkflow', op, { entityId: 'w' }, [graph('c1', 'v1', []), ok, graph('c1', 'v1', [])], true)).error);
      expectMismatch((await run('nected.updateWorkflow', op, { entityId: 'w' }, [graph('c1', 'v1', []), ok, graph('c2', 'v2', [])], true)).error);
    });
  });

  describe('tallyfy.updateRun', () => {
    const op = { orgId: 'o', changes: { name: 'New', tags: ['t1'], prerun: [{ f: 1 }] } };
    it('checks the run in the answer, with no extra call', async () => {
      const run1 = { status: 200, body: { data: { id: 'r', name: 'New', tags: ['t1'], prerun: [{ id: 'f', value: 1 }] } } };
      const r = await run('tallyfy.updateRun', op, { runId: 'r' }, [run1], true);
      expect(r.value?.reason).toBe('UPGRADED');
      expect(r.sent).toHaveLength(1);
    });
    it('fails when the answered run does not hold a changed field', async () => {
      const stale = { status: 200, body: { data: { id: 'r', name: 'Old', tags: ['t1'] } } };
      expectMismatch((await run('tallyfy.updateRun', op, { runId: 'r' }, [stale], true)).error);
      // Without verify the same answer is an upgrade: the check is verify's alone.
      expect((await run('tallyfy.updateRun', op, { runId: 'r' }, [stale])).value?.reason).toBe('UPGRADED');
    });
  });

  describe('alloy.upgradeWorkflow', () => {
    it('has nothing to read back: the answer is the evidence, no extra call', async () => {
      const r = await run('alloy.upgradeWorkflow', { workflowId: 'wf' }, { userId: 'u' }, [{ status: 200, body: { upgraded: true } }], true);
      expect(r.value?.reason).toBe('UPGRADED');
      expect(r.sent).toHaveLength(1);
    });
  });
});

describe('patchHolds: the paths a patch wrote hold what was sent', () => {
  const before = { a: 1, list: [1, 2, 3], obj: { x: 1 }, stamp: 1 };
  it('compares removed, moved and appended paths, skipping test ops and other fields', () => {
    const patch = [
      { op: 'test', path: '/a', value: 1 },
      { op: 'remove', path: '/list/0' },
      { op: 'move', path: '/y', from: '/obj/x' },
      { op: 'add', path: '/list/-', value: 9 },
    ] as const;
    const written = { a: 1, list: [2, 3, 9], obj: {}, y: 1, stamp: 1 };
    expect(patchHolds(written, { ...written, a: 2, stamp: 5 }, [...patch])).toBe(true);
    expect(patchHolds(written, { ...written, list: [2, 3] }, [...patch])).toBe(false);
    expect(patchHolds(written, { ...written, obj: { x: 1 } }, [...patch])).toBe(false);
    expect(patchHolds(written, before, [...patch])).toBe(false);
  });
  it('leaves the ignored top-level fields out of a whole-document replace', () => {
    const patch = [{ op: 'replace' as const, path: '', value: { a: 2 } }];
    expect(patchHolds({ a: 2 }, { a: 2, stamp: 9 }, patch, ['stamp'])).toBe(true);
    expect(patchHolds({ a: 2 }, { a: 1, stamp: 9 }, patch, ['stamp'])).toBe(false);
  });
});

/** Runs the undo of one upgrade of `type` that kept `kept`, against scripted answers. */
function revert(type: string, operation: Record<string, unknown>, target: Record<string, string | number>, kept: unknown, replies: Reply[]) {
  return run(`undo:${type}`, operation, { ...target, '@undo': encodeCarry(kept === undefined ? { n: '' } : { k: kept }) }, replies);
}

describe('undo: what an upgrade keeps, and its revert', () => {
  it('conductor.upgradeExecution keeps the version it left (and the input it replaced) and upgrades back with it', async () => {
    const op = { name: 'flow', version: 3, workflowInput: { a: 1 } };
    const exec = (status: string, version: number, input: Record<string, unknown>) => ({ status: 200, body: { workflowName: 'flow', workflowVersion: version, status, input } });
    const up = await run('conductor.upgradeExecution', op, { workflowId: 'e' }, [exec('RUNNING', 2, { a: 0, b: 2 }), { status: 200 }], false, true);
    expect(up.value).toEqual({ outcome: 'upgraded', reason: 'UPGRADED', undo: { version: 2, input: { a: 0, b: 2 } } });
    const kept = up.value!.undo;

    const back = await revert('conductor.upgradeExecution', op, { workflowId: 'e' }, kept, [exec('RUNNING', 3, { a: 1, b: 2 }), { status: 200 }]);
    expect(back.value).toEqual({ outcome: 'upgraded', reason: 'REVERTED' });
    expect(back.sent[1]).toMatchObject({ method: 'POST', segments: ['api', 'workflow', 'e', 'upgrade'], json: { name: 'flow', version: 2, workflowInput: { a: 0, b: 2 } } });
    for (const [state, reason] of [
      [exec('COMPLETED', 3, { a: 1 }), 'NOT_RUNNING'],
      [exec('RUNNING', 4, { a: 1 }), 'CHANGED_SINCE_UPGRADE'],
      [exec('RUNNING', 3, { a: 9 }), 'CHANGED_SINCE_UPGRADE'],
      [exec('RUNNING', 2, { a: 0, b: 2 }), 'ALREADY_CURRENT'],
    ] as const) {
      const r = await revert('conductor.upgradeExecution', op, { workflowId: 'e' }, kept, [state]);
      expect([r.value, r.sent.length]).toEqual([{ outcome: 'skipped', reason }, 1]);
    }
  });

  it('conductor.updateDefinition keeps an inverse patch and digests, not the document', async () => {
    const op = { patch: [{ op: 'replace', path: '/timeoutSeconds', value: 60 }], ownerEmail: 'ops@acme.test' };
    const def = { name: 'flow', version: 2, tasks: [{ name: 'big', inputParameters: { x: 'y'.repeat(500) } }], timeoutSeconds: 0, ownerEmail: 'old@acme.test', updateTime: 1 };
    const up = await run('conductor.updateDefinition', op, { name: 'flow', version: 2 }, [{ status: 200, body: def }, { status: 200 }], false, true);
    const kept = up.value!.undo as { inverse: unknown[]; wrote: string; before: string };
    expect(kept.inverse).toEqual(expect.arrayContaining([{ op: 'replace', path: '/timeoutSeconds', value: 0 }, { op: 'replace', path: '/ownerEmail', value: 'old@acme.test' }]));
    expect(JSON.stringify(kept).length).toBeLessThan(200);

    const written = { ...def, timeoutSeconds: 60, ownerEmail: 'ops@acme.test', updateTime: 2 };
    const back = await revert('conductor.updateDefinition', op, { name: 'flow', version: 2 }, kept, [{ status: 200, body: written }, { status: 200 }]);
    expect(back.value?.reason).toBe('REVERTED');
    expect(back.sent[1]).toMatchObject({ method: 'PUT', query: { overwrite: 'true', newVersion: 'false' }, json: { ...def, updateTime: 2 } });
    const edited = await revert('conductor.updateDefinition', op, { name: 'flow', version: 2 }, kept, [{ status: 200, body: { ...written, description: 'by hand' } }]);
    expect(edited.value?.reason).toBe('CHANGED_SINCE_UPGRADE');
    const asBefore = await revert('conductor.updateDefinition', op, { name: 'flow', version: 2 }, kept, [{ status: 200, body: { ...def, updateTime: 3 } }]);
    expect(asBefore.value?.reason).toBe('ALREADY_CURRENT');
    // A new version: nothing kept, and its undo says why without a call.
    const newVersion = await run('conductor.updateDefinition', { ...op, newVersion: true }, { name: 'flow' }, [{ status: 200, body: def }, { status: 200 }], false, true);
    expect(newVersion.value?.undo).toBeUndefined();
    const refused = await revert('conductor.updateDefinition', { ...op, newVersion: true }, { name: 'flow' }, undefined, []);
    expect([refused.error?.code, refused.sent.length]).toEqual(['NOT_REVERTIBLE', 0]);
  });

  it('nected.updateWorkflow keeps the checksum its PATCH answered; a stale checksum on the way back re-reads, bounded', async () => {
    const op = { patch: [{ op: 'replace', path: '/name', value: 'new' }], conflictRetries: 1 };
    const got = (name: string, checksum: string) => ({ status: 200, body: { data: { name, nodes: [], checksum } } });
    const up = await run('nected.updateWorkflow', op, { entityId: 'w' }, [got('old', 'c1'), { status: 200, body: { data: { checksum: 'c2' } } }], false, true);
    const kept = up.value!.undo as { checksum: string };
    expect(kept.checksum).toBe('c2');

    const back = await revert('nected.updateWorkflow', op, { entityId: 'w' }, kept, [got('new', 'c2'), { status: 200, body: { data: { checksum: 'c3' } } }]);
    expect(back.value?.reason).toBe('REVERTED');
    expect(back.sent[1]).toMatchObject({ method: 'PATCH', json: { name: 'old', nodes: [], checksum: 'c2' } });
    // A save of the same graph since (another checksum): still ours, reverted.
    const resaved = await revert('nected.updateWorkflow', op, { entityId: 'w' }, kept, [got('new', 'c9'), { status: 200, body: {} }]);
    expect(resaved.value?.reason).toBe('REVERTED');
    expect((await revert('nected.updateWorkflow', op, { entityId: 'w' }, kept, [got('by hand', 'c9')])).value?.reason).toBe('CHANGED_SINCE_UPGRADE');
    const stale = await revert('nected.updateWorkflow', op, { entityId: 'w' }, kept, [got('new', 'c2'), { status: 409, body: {} }, got('new', 'c4'), { status: 409, body: {} }]);
    expect([stale.error?.code, stale.conflicts, stale.sent.length]).toEqual(['CONFLICT_RETRIES_EXHAUSTED', 2, 4]);
  });

  it('tallyfy.updateRun reads the run first to keep the previous values, and writes them back (absent ones as empty)', async () => {
    const op = { orgId: 'org', changes: { name: 'new', summary: 'sum', tags: ['t'] } };
    const run0 = { id: 'r', name: 'old', tags: [] };
    const up = await run('tallyfy.updateRun', op, { runId: 'r' }, [{ status: 200, body: { data: run0 } }, { status: 200, body: { data: { ...run0, ...op.changes } } }], false, true);
    expect(up.sent.map((r) => r.method)).toEqual(['GET', 'PUT']);
    expect(up.value?.undo).toEqual({ prev: { name: 'old', summary: null, tags: [] } });
    const back = await revert('tallyfy.updateRun', op, { runId: 'r' }, up.value!.undo, [{ status: 200, body: { data: { ...run0, ...op.changes } } }, { status: 200, body: { data: run0 } }]);
    expect(back.value?.reason).toBe('REVERTED');
    expect(back.sent[1]).toMatchObject({ method: 'PUT', json: { name: 'old', summary: '', tags: [] } });
    const edited = await revert('tallyfy.updateRun', op, { runId: 'r' }, up.value!.undo, [{ status: 200, body: { data: { ...run0, ...op.changes, name: 'by hand' } } }]);
    expect(edited.value?.reason).toBe('CHANGED_SINCE_UPGRADE');
    // Kick-off fields are read back rendered: nothing is kept, and no read is made for it.
    const prerun = await run('tallyfy.updateRun', { orgId: 'org', changes: { prerun: [1] } }, { runId: 'r' }, [{ status: 200, body: { data: run0 } }], false, true);
    expect([prerun.sent.map((r) => r.method), prerun.value?.undo]).toEqual([['PUT'], undefined]);
  });

  it('an undo target whose record expired fails UNDO_DATA_EXPIRED without a call', async () => {
    const r = await run('undo:tallyfy.updateRun', { orgId: 'org', changes: { name: 'x' } }, { runId: 'r', '@undo': encodeCarry({ x: 1 }) }, []);
    expect([r.error?.code, r.sent.length]).toEqual(['UNDO_DATA_EXPIRED', 0]);
  });

  it('a run after an earlier one whose write landed unanswered records it upgraded, without writing again', async () => {
    const def = { name: 'flow', version: 2, description: 'x', timeoutSeconds: 0, ownerEmail: 'old@acme.test' };
    const op = { patch: [{ op: 'remove', path: '/description' }], ownerEmail: 'ops@acme.test' };
    const first = await run('conductor.updateDefinition', op, { name: 'flow', version: 2 }, [{ status: 200, body: def }, { status: 200 }], false, true);
    // The first run kept its pre-image before its write.
    expect(first.kept).toEqual([first.value!.undo]);
    const { description: _gone, ...landed } = { ...def, ownerEmail: 'ops@acme.test' };
    const again = await run('conductor.updateDefinition', op, { name: 'flow', version: 2 }, [{ status: 200, body: { ...landed, updateTime: 9 } }], false, true, first.kept[0]);
    expect([again.value, again.sent.length]).toEqual([{ outcome: 'upgraded', reason: 'UPGRADED', undo: first.kept[0] }, 1]);
    // Without that earlier write, the same read fails: the patch's `remove` finds nothing.
    expect((await run('conductor.updateDefinition', op, { name: 'flow', version: 2 }, [{ status: 200, body: landed }])).error?.code).toBe('PATCH_NOT_APPLICABLE');

    const exec = { status: 200, body: { workflowName: 'flow', workflowVersion: 3, status: 'RUNNING' } };
    const upgraded = await run('conductor.upgradeExecution', { name: 'flow', version: 3 }, { workflowId: 'e' }, [exec], false, true, { version: 2 });
    expect([upgraded.value, upgraded.sent.length]).toEqual([{ outcome: 'upgraded', reason: 'UPGRADED', undo: { version: 2 } }, 1]);
  });

  it('an earlier pre-image whose write did not land is replaced: a target changed meanwhile keeps the state the write replaces', async () => {
    // The earlier run read version 1; its write was refused; someone moved the execution to 4.
    const exec = { status: 200, body: { workflowName: 'flow', workflowVersion: 4, status: 'RUNNING' } };
    const r = await run('conductor.upgradeExecution', { name: 'flow', version: 3 }, { workflowId: 'e' }, [exec, { status: 200 }], false, true, { version: 1 });
    expect([r.value, r.kept]).toEqual([{ outcome: 'upgraded', reason: 'UPGRADED', undo: { version: 4 } }, [{ version: 4 }]]);

    const op = { orgId: 'org', changes: { name: 'new' } };
    const run0 = { id: 'r', name: 'renamed by hand' };
    const t = await run('tallyfy.updateRun', op, { runId: 'r' }, [{ status: 200, body: { data: run0 } }, { status: 200, body: { data: { ...run0, name: 'new' } } }], false, true, { prev: { name: 'old' } });
    expect([t.value?.undo, t.sent.map((x) => x.method)]).toEqual([{ prev: { name: 'renamed by hand' } }, ['GET', 'PUT']]);
    // And one whose update landed: nothing written again.
    const landed = await run('tallyfy.updateRun', op, { runId: 'r' }, [{ status: 200, body: { data: { id: 'r', name: 'new' } } }], false, true, { prev: { name: 'old' } });
    expect([landed.value, landed.sent.length]).toEqual([{ outcome: 'upgraded', reason: 'UPGRADED', undo: { prev: { name: 'old' } } }, 1]);
  });

  it('digests a document whatever its key order (a platform may answer with its own), leaving out the ignored fields', () => {
    const a = { name: 'flow', tasks: [{ b: 1, a: 2 }], updateTime: 1 };
    const b = { tasks: [{ a: 2, b: 1 }], updateTime: 2, name: 'flow' };
    expect(digest(a, ['updateTime'])).toBe(digest(b, ['updateTime']));
    expect(digest(a)).not.toBe(digest(b));
    expect(digest({ ...a, tasks: [{ a: 2 }] }, ['updateTime'])).not.toBe(digest(a, ['updateTime']));
  });
});

describe('an undo target rebuilt from its key alone (its record expired)', () => {
  it('splits <name>@<version> back into fields, so a name at its length limit still validates', async () => {
    const { targetOfKey } = await import('../../src/producer/undo.js');
    const { validateTarget } = await import('../../src/shared/index.js');
    const definition = operationFor('conductor.updateDefinition');
    const name = "n".repeat(512); // the id field's limit (spec.ts)
    const key = definition.targetKey({ name, version: 7 });
    expect(targetOfKey(definition, key)).toEqual({ name, version: 7 });
    expect(() => validateTarget(targetOfKey(definition, key), 'conductor.updateDefinition', 'undo', 1)).not.toThrow();
    // The whole key in the id field, as before, is refused: the undo campaign would not be made.
    expect(() => validateTarget({ name: key }, 'conductor.updateDefinition', 'undo', 1)).toThrow(/name/);
    // Without a version field the key is the id, '@' and all.
    expect(targetOfKey(operationFor('alloy.upgradeWorkflow'), 'user@3')).toEqual({ userId: 'user@3' });
  });
});
