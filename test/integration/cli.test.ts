import { runCli } from '../support/fleet.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { setupDeployment } from '../support/deployment.js';
import { keysUnder } from '../support/harness.js';

const run = runCli;

describe('upshift CLI', () => {
  // The registry the CLI's enqueue and worker commands read: the spec's platform at 127.0.0.1:9.
  const t = setupDeployment({ urls: ['http://127.0.0.1:9'] });
  let dir: string;
  let env: Record<string, string>;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'upshift-cli-'));
    env = t.env();
  });

  const specFile = (spec: unknown) => {
    const f = join(dir, 'spec.json');
    writeFileSync(f, typeof spec === 'string' ? spec : JSON.stringify(spec, null, 2));
    return f;
  };
  const spec = { id: 'cli-1', connection: { baseUrl: 'http://127.0.0.1:9', credentialRef: 'K' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' } };

  it('enqueue --json from a file and from stdin, then status and report', async () => {
    const targets = join(dir, 't.ndjson');
    writeFileSync(targets, '{"userId":"a"}\n{"userId":"b,\\"c\\""}\n{"userId":"a"}\n');
    const r = await run(['enqueue', specFile(spec), '--targets', targets, '--json'], env);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ campaignId: 'cli-1', total: 2 });

    const r2 = await run(['enqueue', specFile({ ...spec, id: 'cli-2' }), '--targets', '-', '--json'], env, '{"userId":"x"}\n');
    expect(JSON.parse(r2.stdout)).toEqual({ campaignId: 'cli-2', total: 1 });

    const s = await run(['status', 'cli-1', '--json'], env);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ id: 'cli-1', state: 'running', total: 2, upgraded: 0 });

    const rep = await run(['report', 'cli-1', '--format', 'csv'], env);
    expect(rep.code).toBe(0);
    const rows = rep.stdout.trim().split('\n');
    expect(rows[0]).toBe('target,outcome,reason,attempts,error,at');
    expect(rows.slice(1).sort()).toEqual(['"b,""c"""' + ',pending,,0,,', 'a,pending,,0,,'].sort());

    const nd = await run(['report', 'cli-1', '--outcome', 'pending'], env);
    expect(nd.stdout.trim().split('\n').map((l) => JSON.parse(l).target).sort()).toEqual(['a', 'b,"c"']);
  });

  it('exits 2 naming the line and field of a bad target, and enqueues nothing', async () => {
    const targets = join(dir, 't.ndjson');
    writeFileSync(targets, '{"userId":"a"}\n{"userId":"../x"}\n');
    const r = await run(['enqueue', specFile(spec), '--targets', targets], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${targets}, line 2, field "userId": must not contain "/"`);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it('exits 2 on an invalid spec, an unknown campaign, bad flags and unknown commands', async () => {
    const bad = await run(['enqueue', specFile('{\n "id": 1\n}'), '--targets', '-'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/field "id"/);
    expect((await run(['status', 'nope'], env)).code).toBe(2);
    expect((await run(['report', 'cli-1', '--format', 'xml'], env)).code).toBe(2);
    expect((await run(['worker', '--concurrency', 'zero'], env)).code).toBe(2);
    const unknown = await run(['frobnicate'], env);
    expect([unknown.code, unknown.stderr]).toEqual([2, 'upshift: unknown command "frobnicate"; run "upshift --help" for the list of commands\n']);
    const missing = await run(['status'], env);
    expect([missing.code, missing.stderr]).toEqual([2, 'upshift status: arguments: missing <id>; usage: upshift status <id>\n']);
    expect((await run(['pause', 'nope'], env)).stderr).toMatch(/no campaign "nope"; list campaigns with "upshift list"/);
    expect((await run(['enqueue', join(dir, 'missing.json')], env)).code).toBe(2);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it('exits 1 with a clear message when Redis is unreachable', async () => {
    const r = await run(['status', 'x'], { ...env, REDIS_URL: 'redis://:hunter2@127.0.0.1:1' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
    expect(r.stderr).not.toContain('hunter2');
  });

  it('list, pause, resume, cancel and retry from the command line', async () => {
    const targets = join(dir, 't.ndjson');
    writeFileSync(targets, '{"userId":"a"}\n{"userId":"b"}\n');
    expect((await run(['enqueue', specFile(spec), '--targets', targets, '--dry-run'], env)).code).toBe(0);
    const list = await run(['list', '--json'], env);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toMatchObject([{ id: 'cli-1', state: 'running', total: 2, dryRun: true }]);
    expect((await run(['list'], env)).stdout).toMatch(/^ID\s+STATE\s+TOTAL/);

    const paused = await run(['pause', 'cli-1'], env);
    expect([paused.code, paused.stdout.trim()]).toEqual([0, 'campaign cli-1: paused']);
    expect((await run(['resume', 'cli-1'], env)).stdout.trim()).toBe('campaign cli-1: running');
    const promote = await run(['promote', 'cli-1'], env);
    expect(promote.code).toBe(2);
    expect(promote.stderr).toMatch(/cannot promote campaign "cli-1": it is running/);
    const cancel = await run(['cancel', 'cli-1'], env);
    expect([cancel.code, cancel.stdout.trim()]).toEqual([0, 'campaign cli-1 cancelled: 2 targets that had not started recorded skipped/CANCELLED']);
    expect(JSON.parse((await run(['status', 'cli-1', '--json'], env)).stdout)).toMatchObject({ state: 'cancelled', skipped: 2, pending: 0 });

    expect((await run(['pause', 'nope'], env)).code).toBe(2);
    expect((await run(['retry', 'cli-1', '--reason', 'NOPE'], env)).code).toBe(2);
    expect((await run(['retry', 'cli-1'], env)).stdout.trim()).toBe('campaign cli-1: 0 failed targets put back to run');
  });
});
