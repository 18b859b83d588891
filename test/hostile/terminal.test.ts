/**
 * Text stored in Redis that someone else wrote (a campaign's name and state, a pause reason,
 * reason codes, a target's extra fields) and text quoted back from input (a bad JSON line, an
 * unknown id) must not drive the operator's terminal. The `upshift` command is run as a user
 * would; its human output shows control characters escaped (`\u001b`), and its machine output
 * (`--json`, report NDJSON) stays valid JSON holding exactly the stored data, with no raw
 * control byte either.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { campaignKeys } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { runCli } from '../support/fleet.js';


const run = runCli;

const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/; // LF ends lines; anything else is hostile
const NAME = 'Move\u001b]0;owned\u0007\u001b[2J\u009b31m';
const STATE = 'completed\u001b[1A\u001b[K';
const REASON = 'SERVER_ERROR\u0085\u001b[5m';
const NOTE = 'note\u009b2J\u007f\u001b[31m';

describe('upshift output with hostile text in Redis', () => {
  const t = setupDeployment({ urls: ['http://127.0.0.1:9'] });
  let env: Record<string, string>;
  beforeEach(async () => {
    env = { ...t.env(), NO_COLOR: '1' };
    const spec = {
      id: 'hostile-text',
      connection: { baseUrl: 'http://127.0.0.1:9', credentialRef: 'K' },
      operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' },
    };
    await enqueueCampaign(spec, [{ userId: 'a', note: NOTE }], t.producer);
    // What another writer left in the status hash (the schema refuses such a name at enqueue).
    await t.redis.hset(campaignKeys(t.prefix, 'hostile-text').status, {
      name: NAME,
      state: STATE,
      pausedReason: 'OPERATOR\u001b[2J',
      [`r:${REASON}`]: 1,
      finishedAt: Date.now(),
    });
  });

  it('status, status --watch and list print it escaped', async () => {
    const status = await run(['status', 'hostile-text'], env);
    expect(status.code).toBe(0);
    expect(status.stdout).not.toMatch(CONTROL);
    expect(status.stdout).toContain('Move\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m');
    expect(status.stdout).toContain('completed\\u001b[1A\\u001b[K');

    const watch = await run(['status', 'hostile-text', '--watch'], env);
    expect(watch.code).toBe(0);
    expect(watch.stdout).not.toMatch(CONTROL);
    expect(watch.stdout).toContain('SERVER_ERROR\\u0085\\u001b[5m');

    const list = await run(['list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toMatch(CONTROL);
    expect(list.stdout).toContain('completed\\u001b[1A\\u001b[K');
  });

  it('--json and report NDJSON are valid JSON with the exact stored text and no raw control byte', async () => {
    const json = await run(['status', 'hostile-text', '--json'], env);
    expect(json.stdout).not.toMatch(CONTROL);
    expect(JSON.parse(json.stdout)).toMatchObject({ name: NAME, state: STATE, reasons: { [REASON]: 1 } });

    const watched = await run(['status', 'hostile-text', '--watch', '--json'], env);
    expect(watched.stdout).not.toMatch(CONTROL);
    expect(JSON.parse(watched.stdout.trim().split('\n')[0]!)).toMatchObject({ name: NAME });

    const list = await run(['list', '--json'], env);
    expect(list.stdout).not.toMatch(CONTROL);
    expect(JSON.parse(list.stdout)[0]).toMatchObject({ name: NAME, state: STATE });

    const report = await run(['report', 'hostile-text'], env);
    expect(report.stdout).not.toMatch(CONTROL);
    expect(JSON.parse(report.stdout)).toMatchObject({ target: 'a', fields: { userId: 'a', note: NOTE } });
  });

  it('error messages quoting input print it escaped', async () => {
    const unknown = await run(['status', 'no\u001b[2Jsuch'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).not.toMatch(CONTROL);
    expect(unknown.stderr).toContain('no\\u001b[2Jsuch');

    // JSON.parse quotes the bad text back in its message.
    const dir = mkdtempSync(join(tmpdir(), 'upshift-terminal-'));
    const specFile = join(dir, 'spec.json');
    const targets = join(dir, 't.ndjson');
    writeFileSync(specFile, JSON.stringify({ id: 'x', connection: { baseUrl: 'http://127.0.0.1:9', credentialRef: 'K' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' } }));
    writeFileSync(targets, '{"userId":"a"}\n\u001b]0;owned\u0007\u009b2J\n');
    const bad = await run(['enqueue', specFile, '--targets', targets], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/line 2: not valid JSON/);
    expect(bad.stderr).not.toMatch(CONTROL);
  });
});
