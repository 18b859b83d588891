import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign, enqueueSourced, readNdjsonTargets } from '../../src/producer/index.js';
import { campaignKeys, InputError, readStatus, schedulerKeys, validateSpec } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { keysUnder } from '../support/harness.js';
import { testConnections } from '../support/connections.js';

const spec = (extra: Record<string, unknown> = {}) => ({
  connection: { baseUrl: 'http://127.0.0.1:1', credentialRef: 'ALLOY_KEY' },
  operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf' },
  ...extra,
});

const connections = testConnections('http://127.0.0.1:1');

function ndjson(text: string) {
  return readNdjsonTargets(Readable.from([text]), 'users.ndjson');
}

describe('producer', () => {
  const t = setupDeployment({ urls: ['http://127.0.0.1:1'] });

  it('creates the status hash and one pending entry per distinct target, and no BullMQ job yet', async () => {
    const targets = [{ userId: 'u1' }, { userId: 'u2', tenant: 'a' }, { userId: 'u1' }];
    const res = await enqueueCampaign(spec({ id: 'camp-1', name: 'n' }), targets, t.producer);
    expect(res).toEqual({ campaignId: 'camp-1', total: 2, created: true });
    const status = await readStatus(t.redis, t.prefix, 'camp-1');
    expect(status).toMatchObject({ state: 'running', operation: 'alloy.upgradeWorkflow', name: 'n', total: 2, pending: 2, active: 0, upgraded: 0 });
    const keys = campaignKeys(t.prefix, 'camp-1');
    expect(await t.redis.lrange(keys.group(0), 0, -1)).toEqual(['{"userId":"u1"}', '{"userId":"u2","tenant":"a"}']);
    // Workers take targets from the scheduler; BullMQ only ever sees dispatched ones.
    expect(await t.redis.llen(`${t.prefix}:targets:wait`)).toBe(0);
    expect(await t.redis.zscore(schedulerKeys(t.prefix).staging, 'camp-1')).toBeNull();
    // the secret's name is stored, never a value
    expect(await t.redis.get(keys.spec)).toContain('"credentialRef":"ALLOY_KEY"');
  });

  it('groups targets by their resolved limit keys', async () => {
    const limits = [
      { key: 'tenant-${target.tenant}', concurrency: 2 },
      { key: '${connection.baseUrl}|${operation.workflowId}|${campaign.id}', concurrency: 5, rate: { max: 10, perMs: 1000 } },
    ];
    const targets = [{ userId: 'u1', tenant: 'a' }, { userId: 'u2', tenant: 'b' }, { userId: 'u3', tenant: 'a' }];
    await enqueueCampaign(spec({ id: 'lim', limits }), targets, t.producer);
    const keys = campaignKeys(t.prefix, 'lim');
    // The campaign's own key values, scoped to its connection (ALLOY_KEY, by the registry): scope 1.
    const other = 'ALLOY_KEY/http://127.0.0.1:1|wf|lim';
    expect(JSON.parse((await t.redis.hget(keys.groups, '0'))!)).toEqual([['ALLOY_KEY/tenant-a', 2, 0, 0, 1], [other, 5, 10, 1000, 1]]);
    expect(JSON.parse((await t.redis.hget(keys.groups, '1'))!)).toEqual([['ALLOY_KEY/tenant-b', 2, 0, 0, 1], [other, 5, 10, 1000, 1]]);
    expect(await t.redis.llen(keys.group(0))).toBe(2);
    expect(await t.redis.llen(keys.group(1))).toBe(1);
    expect(await t.redis.lrange(keys.ready, 0, -1)).toEqual(['0', '1']);
  });

  it('names the line and limit of a target whose key cannot be resolved, leaving nothing', async () => {
    const limits = [{ key: '${target.tenant}', concurrency: 1 }];
    const text = '{"userId":"a","tenant":"t"}\n{"userId":"b","tenant":""}\n';
    const err = await enqueueSourced(validateSpec(spec({ id: 'nokey', limits }), 'spec', connections), ndjson(text), { ...t.producer, source: 'users.ndjson' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err).toMatchObject({ line: 2, field: 'limits[0].key' });
    expect((err as Error).message).toMatch(/\$\{target.tenant\} is missing or empty/);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it.each([
    [[{ key: '${target.a}', concurrency: 1 }, { key: 'b', concurrency: 1 }, { key: 'c', concurrency: 1 }, { key: 'd', concurrency: 1 }, { key: 'e', concurrency: 1 }], 'limits', /at most 4/],
    [[{ key: '${secret.x}', concurrency: 1 }], 'limits[0].key', /unknown placeholder/],
    [[{ key: 'k' }], 'limits[0]', /needs "concurrency", "rate"/],
    [[{ key: 'k', concurrency: 0 }], 'limits[0].concurrency', /./],
  ])('refuses invalid limits %#', async (limits, field, message) => {
    const err = await enqueueCampaign(spec({ limits }), [{ userId: 'a' }], t.producer).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).field).toBe(field);
    expect((err as Error).message).toMatch(message);
    expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
  });

  it('generates an id when the spec has none, and takes inline targets', async () => {
    const res = await enqueueCampaign(spec({ targets: [{ userId: 'a' }] }), undefined, t.producer);
    expect(res.campaignId).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(res.total).toBe(1);
  });

  it('creates no duplicate work when the same campaign is enqueued twice', async () => {
    const targets = [{ userId: 'u1' }, { userId: 'u2' }];
    await enqueueCampaign(spec({ id: 'again' }), targets, t.producer);
    const before = await keysUnder(t.redis, t.prefix);
    const second = await enqueueCampaign(spec({ id: 'again' }), targets, t.producer);
    expect(second).toEqual({ campaignId: 'again', total: 2, created: false });
    expect(await t.redis.llen(campaignKeys(t.prefix, 'again').group(0))).toBe(2);
    expect(await keysUnder(t.redis, t.prefix)).toEqual(before);
  });

  it('refuses a campaign another producer is staging, and takes over an abandoned staging', async () => {
    const staging = schedulerKeys(t.prefix).staging;
    const keys = campaignKeys(t.prefix, 'staged');
    // A producer that died mid-way left a list and its registration behind.
    await t.redis.rpush(keys.group(0), '{"userId":"ghost"}');
    await t.redis.hset(keys.groups, '0', '[]');
    await t.redis.zadd(staging, Date.now() + 60_000, 'staged');
    await expect(enqueueCampaign(spec({ id: 'staged' }), [{ userId: 'u1' }], t.producer)).rejects.toThrow(/being enqueued by another producer/);
    await t.redis.zadd(staging, Date.now() - 1, 'staged');
    const res = await enqueueCampaign(spec({ id: 'staged' }), [{ userId: 'u1' }], t.producer);
    expect(res).toEqual({ campaignId: 'staged', total: 1, created: true });
    expect(await t.redis.lrange(keys.group(0), 0, -1)).toEqual(['{"userId":"u1"}']);
  });

  it('refuses a different spec under an existing id, changing nothing', async () => {
    await enqueueCampaign(spec({ id: 'same' }), [{ userId: 'u1' }], t.producer);
    const before = await keysUnder(t.redis, t.prefix);
    await expect(
      enqueueCampaign(spec({ id: 'same', operation: { type: 'alloy.upgradeWorkflow', workflowId: 'other' } }), [{ userId: 'u1' }], t.producer),
    ).rejects.toThrow(/already exists with a different spec/);
    expect(await keysUnder(t.redis, t.prefix)).toEqual(before);
  });

  it('streams NDJSON with blank lines, counting lines as the file does', async () => {
    const res = await enqueueSourced(validateSpec(spec({ id: 'nd' }), 'spec', connections), ndjson('{"userId":"a"}\n\n{"userId":"b"}\n'), { ...t.producer, source: 'users.ndjson' });
    expect(res.total).toBe(2);
  });

  describe('leaves nothing behind on invalid input', () => {
    it.each([
      ['invalid JSON on a line', '{"userId":"a"}\n{"userId":\n', 2, undefined, /not valid JSON/],
      ['a missing id field', '{"userId":"a"}\n{"user":"b"}\n', 2, 'userId', /required/],
      ['an id with a slash', '{"userId":"a"}\n\n{"userId":"x/y"}\n', 3, 'userId', /"\/"/],
      ['a late bad line after many good ones', Array.from({ length: 2500 }, (_, i) => `{"userId":"u${i}"}`).join('\n') + '\n{"userId":".."}\n', 2501, 'userId', /"\.\."/],
    ])('%s', async (_name, text, line, field, message) => {
      const err = await enqueueSourced(validateSpec(spec({ id: 'bad' }), 'spec', connections), ndjson(text), { ...t.producer, source: 'users.ndjson', chunkSize: 1000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).line).toBe(line);
      expect((err as InputError).field).toBe(field);
      expect((err as InputError).message).toMatch(message);
      expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
    });

    it('an invalid spec', async () => {
      await expect(enqueueCampaign({ ...spec(), retry: { attempts: -1 } }, [{ userId: 'a' }], t.producer)).rejects.toThrow(
        /field "retry.attempts"/,
      );
      expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
    });

    it('targets both inline and streamed', async () => {
      await expect(enqueueCampaign(spec({ targets: [{ userId: 'a' }] }), [{ userId: 'b' }], t.producer)).rejects.toThrow(/both inline/);
      expect(await keysUnder(t.redis, t.prefix)).toEqual([]);
    });
  });
});
