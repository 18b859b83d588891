import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { campaignKeys, createLogger, loadScripts, parseMarker, readStatus, schedulerKeys, streamReport, type ReportLine } from '../../src/shared/index.js';
import { Archiver } from '../../src/worker/archiver.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

/**
 * Outcome records are written in two steps (src/shared/records.ts): marker and outbox with the
 * counters, then copied to the campaign's own `{<id>}` key by the worker. These tests check the
 * copy, what readers see when it has not happened, and that a late copy never wins.
 */
const log = createLogger('silent');
const RETENTION_MS = 600_000;

describe('outcome records in the campaign slot', () => {
  const t = setupDeployment({ sandbox: {}, urls: ['http://127.0.0.1:1'], credentials: true });
  const spec = (id: string) => ({
    id,
    connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
    operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
  });
  const run = async (id: string, n: number, outboxSweepMs = 60_000) => {
    const fleet = alloyFleet(n);
    t.sandbox.load(fleet.fixtures);
    await t.startWorker({ concurrency: 10, outboxSweepMs });
    await enqueueCampaign(spec(id), fleet.targets, { ...t.producer, retentionMs: RETENTION_MS });
    return waitForCompletion(t.prefix, id);
  };
  const report = async (id: string) => {
    const out: ReportLine[] = [];
    for await (const line of streamReport(t.redis, t.prefix, id)) out.push(line);
    return out.sort((a, b) => a.target.localeCompare(b.target));
  };

  it('moves every record to the campaign key, empties the outbox and gives the records the retention', async () => {
    expect(await run('moved', 300)).toMatchObject({ state: 'completed', upgraded: 300 });
    const keys = campaignKeys(t.prefix, 'moved');
    expect(keys.records).toBe(`${t.prefix}:campaign:{moved}:records`);
    // The finishing worker archives before it reports the run settled; closing waits for it.
    await t.closeWorkers();
    expect(await t.redis.exists(keys.outbox)).toBe(0);
    expect(await t.redis.sismember(schedulerKeys(t.prefix).outboxes, 'moved')).toBe(0);

    const markers = Object.entries(await t.redis.hgetall(keys.outcomes)).map(([k, v]) => [k, parseMarker(v)] as const);
    expect(markers).toHaveLength(300);
    expect(new Set(markers.map(([, m]) => m.seq)).size).toBe(300);
    const records = await t.redis.hgetall(keys.records);
    for (const [target, m] of markers) {
      expect(m).toMatchObject({ outcome: 'upgraded', reason: 'UPGRADED' });
      const stored = records[target]!;
      expect(stored.startsWith(`${m.seq}|`)).toBe(true);
      expect(JSON.parse(stored.slice(stored.indexOf('|') + 1))).toMatchObject({ target: { userId: target }, outcome: 'upgraded', attempts: 1 });
    }
    // The records expire with the rest of the campaign (same absolute time, set from finishedAt).
    const [recordsTtl, statusTtl] = [await t.redis.pttl(keys.records), await t.redis.pttl(keys.status)];
    expect(recordsTtl).toBeGreaterThan(RETENTION_MS - 60_000);
    expect(Math.abs(recordsTtl - statusTtl)).toBeLessThan(2_000);

    const lines = await report('moved');
    expect(lines).toHaveLength(300);
    expect(lines.every((l) => l.outcome === 'upgraded' && l.fields.userId === l.target && l.attempts === 1)).toBe(true);
  });

  it('records left by a worker that died after finish stay readable in the outbox, and a sweep moves them', async () => {
    // The scripts driven as a worker would, with nothing archived: what a worker killed between
    // `finish` and its archive call leaves behind.
    const scripts = loadScripts(t.redis, t.prefix);
    await scripts.renew(60_000, 'doomed-worker', 100, []);
    const fleet = alloyFleet(120);
    await enqueueCampaign({ ...spec('stuck'), connection: { baseUrl: 'http://127.0.0.1:1', credentialRef: 'K' } }, fleet.targets, {
      redis: t.redis,
      prefix: t.prefix,
      connections: t.connections,
      retentionMs: RETENTION_MS,
    });
    let finished = 0;
    for (let picks = (await scripts.dispatch(100, 60_000)).picks; picks.length > 0; ) {
      const next: typeof picks = [];
      for (const { holder, entry } of picks) {
        const target = JSON.parse(entry) as { userId: string };
        expect(await scripts.claim(holder, 'run', 60_000, target.userId, 'ch')).toMatchObject({ kind: 'claimed' });
        const record = { target, outcome: 'upgraded', reason: 'UPGRADED', attempts: 1, error: null, at: 1_700_000_000_000 + finished++ };
        const res = await scripts.finish({
          holder, token: 'run', campaignId: 'stuck', targetKey: target.userId, outcome: 'upgraded', reason: 'UPGRADED',
          recordJson: JSON.stringify(record), channel: 'ch', maxPicks: 100, leaseMs: 60_000,
        });
        // A record's seq is its dispatch's number: later runs of a target always have larger ones.
        expect(res.seq).toBe(Number(holder.slice(holder.lastIndexOf('.') + 1)));
        next.push(...res.picks);
      }
      picks = next.length > 0 ? next : (await scripts.dispatch(100, 60_000)).picks;
    }
    const keys = campaignKeys(t.prefix, 'stuck');
    expect(await readStatus(t.redis, t.prefix, 'stuck')).toMatchObject({ state: 'completed', upgraded: 120 });
    expect(await t.redis.hlen(keys.outbox)).toBe(120);
    expect(await t.redis.exists(keys.records)).toBe(0);
    expect(await t.redis.sismember(schedulerKeys(t.prefix).outboxes, 'stuck')).toBe(1);
    const before = await report('stuck');
    expect(before).toHaveLength(120);
    expect(before.every((l) => l.outcome === 'upgraded' && l.fields.userId === l.target && l.at !== null)).toBe(true);

    const archiver = new Archiver(t.redis, scripts, t.prefix, log, 20, 3_600_000);
    await archiver.sweep();
    await archiver.close();
    expect(await t.redis.exists(keys.outbox)).toBe(0);
    expect(await t.redis.sismember(schedulerKeys(t.prefix).outboxes, 'stuck')).toBe(0);
    expect(await t.redis.hlen(keys.records)).toBe(120);
    expect(await t.redis.pttl(keys.records)).toBeGreaterThan(RETENTION_MS - 60_000);
    expect(await report('stuck')).toEqual(before);
  });

  it('a late copy of an older record never replaces a newer one', async () => {
    await run('late', 5);
    await t.closeWorkers();
    const scripts = loadScripts(t.redis, t.prefix);
    const keys = campaignKeys(t.prefix, 'late');
    const seq = parseMarker((await t.redis.hget(keys.outcomes, 'user-0'))!).seq;
    const current = await t.redis.hget(keys.records, 'user-0');
    expect(await scripts.archive('late', ['user-0', `${seq - 1}|{"stale":true}`])).toBe(0);
    expect(await scripts.archive('late', ['user-0', `${seq}|{"again":true}`])).toBe(0);
    expect(await t.redis.hget(keys.records, 'user-0')).toBe(current);
    expect(await scripts.archive('late', ['user-0', `${seq + 1}|{"newer":true}`])).toBe(1);
    // A stored record whose seq is not the marker's is not the target's record: the report
    // falls back to what the marker says rather than show it.
    const line = (await report('late')).find((l) => l.target === 'user-0')!;
    expect(line).toMatchObject({ outcome: 'upgraded', reason: 'UPGRADED', fields: {}, at: null });
  });
  it("reports a target's own field named @undo: only an undo campaign's carried data is left out", async () => {
    const fleet = alloyFleet(3);
    t.sandbox.load(fleet.fixtures);
    await t.startWorker({ concurrency: 3 });
    const targets = fleet.targets.map((x) => ({ ...x, '@undo': 'mine' }));
    await enqueueCampaign(spec('own-undo-field'), targets, { ...t.producer, retentionMs: RETENTION_MS });
    expect(await waitForCompletion(t.prefix, 'own-undo-field')).toMatchObject({ upgraded: 3 });
    const lines = await report('own-undo-field');
    expect(lines.map((l) => l.fields)).toEqual(fleet.targets.map((x) => ({ ...x, '@undo': 'mine' })));
  });
});
