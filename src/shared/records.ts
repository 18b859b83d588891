import type { RedisClient } from './redis.js';
import { DEFAULTS } from './config.js';
import { campaignKeys } from './keys.js';
import type { RecordedOutcome, ReasonCode } from './reasons.js';
import type { Scripts } from './scripts/index.js';

/**
 * Outcome records, stored in two steps (docs/ARCHITECTURE.md, "Outcome records"):
 *
 * 1. `finish` (or `claim`, `cancelPending`) writes a short **marker** `<seq>|<outcome>|<reason>`
 *    to `:outcomes` and the full record to `:outbox`, atomically with the counters, in the
 *    deployment's slot: counters and markers always agree, and a target is recorded once.
 * 2. The worker that recorded it copies the record to the campaign's `:records` hash, in the
 *    campaign's own hash tag slot (`archive-1.lua`), then drops it from the outbox
 *    (`unoutbox-1.lua`). A worker that dies between the two leaves the record in the outbox,
 *    where readers find it and any worker's sweep archives it.
 *
 * A record is the one whose seq equals its marker's, wherever it is: an archived copy of an
 * older record (a retried target) is never read.
 */

export interface Marker {
  readonly seq: number;
  readonly outcome: RecordedOutcome;
  readonly reason: ReasonCode;
}

export function parseMarker(value: string): Marker {
  const [seq, outcome, reason] = value.split('|');
  return { seq: Number(seq), outcome: outcome as RecordedOutcome, reason: reason as ReasonCode };
}

/** A records hash value, `<seq>|<record JSON>` -> [seq, JSON]. */
function splitStored(value: string): [number, string] {
  const bar = value.indexOf('|');
  return [Number(value.slice(0, bar)), value.slice(bar + 1)];
}

/** An outbox value, `<record JSON>\n<target key>` -> [JSON, target key] (JSON has no raw newline). */
function splitOutboxEntry(value: string): [string, string] {
  const nl = value.indexOf('\n');
  return [value.slice(0, nl), value.slice(nl + 1)];
}

/**
 * The record JSON of each marked target (`undefined` where none matches its marker, which only
 * a retention expiry racing the read can cause). Two reads per batch: the outbox by seq, the
 * records by target.
 */
export async function readRecordJson(
  redis: RedisClient,
  prefix: string,
  campaignId: string,
  marked: ReadonlyArray<readonly [targetKey: string, marker: Marker]>,
): Promise<(string | undefined)[]> {
  if (marked.length === 0) return [];
  const keys = campaignKeys(prefix, campaignId);
  const [inOutbox, archived] = await Promise.all([
    redis.hmget(keys.outbox, ...marked.map(([, m]) => String(m.seq))),
    redis.hmget(keys.records, ...marked.map(([k]) => k)),
  ]);
  return marked.map(([, m], i) => {
    // The outbox is keyed by seq: an entry there is this very record.
    const pending = inOutbox[i];
    if (pending != null) return splitOutboxEntry(pending)[0];
    const stored = archived[i];
    if (stored == null) return undefined;
    const [seq, json] = splitStored(stored);
    return seq === m.seq ? json : undefined;
  });
}

/** A recorded target: its key, its marker, and its record JSON (see `readRecordJson`). */
export interface MarkedRecord {
  readonly targetKey: string;
  readonly marker: Marker;
  readonly json: string | undefined;
}

/**
 * Every recorded target of a campaign whose marker passes `keep`, with its record, in batches of
 * about `batch` markers (the report, `retry`). Markers are filtered before any record is read.
 */
export async function* scanRecords(
  redis: RedisClient,
  prefix: string,
  campaignId: string,
  keep: (m: Marker) => boolean,
  batch: number,
): AsyncIterable<MarkedRecord[]> {
  let cursor = '0';
  do {
    const [next, flat] = await redis.hscan(campaignKeys(prefix, campaignId).outcomes, cursor, 'COUNT', batch);
    cursor = next;
    const marked: [string, Marker][] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const m = parseMarker(flat[i + 1]!);
      if (keep(m)) marked.push([flat[i]!, m]);
    }
    if (marked.length === 0) continue;
    const json = await readRecordJson(redis, prefix, campaignId, marked);
    yield marked.map(([targetKey, marker], i) => ({ targetKey, marker, json: json[i] }));
  } while (cursor !== '0');
}

/** One record to archive: as `finish` stored it in the outbox. */
export interface OutboxRecord {
  readonly targetKey: string;
  readonly seq: number;
  readonly json: string;
}

/**
 * Archives records of one campaign and drops them from its outbox; when that empties the outbox
 * of a campaign that has ended, gives the records hash its retention expiry. Safe to repeat and
 * to run concurrently with other workers doing the same.
 */
export async function archiveRecords(redis: RedisClient, scripts: Scripts, prefix: string, campaignId: string, records: readonly OutboxRecord[]): Promise<void> {
  if (records.length > 0) await scripts.archive(campaignId, records.flatMap((r) => [r.targetKey, `${r.seq}|${r.json}`]));
  let expiryMs = 0;
  let seqs: number[] = records.map((r) => r.seq);
  // The second call confirms the expiry the first asked for (a third only if the campaign was
  // retried and ended again in between).
  for (let round = 0; round < 3; round++) {
    const want = await scripts.unoutbox(campaignId, expiryMs, seqs);
    if (want === 0) return;
    await redis.pexpireat(campaignKeys(prefix, campaignId).records, want);
    expiryMs = want;
    seqs = [];
  }
}

/** Archives everything in a campaign's outbox, `chunk` records a step (sweeps, cancel). */
export async function flushOutbox(redis: RedisClient, scripts: Scripts, prefix: string, campaignId: string, chunk = DEFAULTS.outboxFlushBatch): Promise<number> {
  const { outbox } = campaignKeys(prefix, campaignId);
  let moved = 0;
  let cursor = '0';
  do {
    const [next, flat] = await redis.hscan(outbox, cursor, 'COUNT', chunk);
    cursor = next;
    const records: OutboxRecord[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const [json, targetKey] = splitOutboxEntry(flat[i + 1]!);
      records.push({ targetKey, seq: Number(flat[i]), json });
    }
    if (records.length > 0) await archiveRecords(redis, scripts, prefix, campaignId, records);
    moved += records.length;
  } while (cursor !== '0');
  // Also when there was nothing left to move: the records' expiry may still be owed.
  await archiveRecords(redis, scripts, prefix, campaignId, []);
  return moved;
}
