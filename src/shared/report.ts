import type { RedisClient } from './redis.js';
import { DEFAULTS } from './config.js';
import { campaignKeys, schedulerKeys } from './keys.js';
import { scanRecords, type Marker } from './records.js';
import { operationFor } from './operations/index.js';
import { isUndoType, UNDO_FIELD } from './operations/undo.js';
import { DRY_RUN_OUTCOME, type Outcome, type RecordedOutcome, type ReasonCode } from './reasons.js';

/** One target's outcome record (see records.ts for where it is kept). */
export interface OutcomeRecord {
  readonly target: Record<string, string | number>;
  readonly outcome: RecordedOutcome;
  readonly reason: ReasonCode;
  readonly attempts: number;
  /** Retry-After waits sat out before this outcome (absent when none). */
  readonly retryAfterWaits?: number;
  /** Stale-checksum rejections met in the final attempt (absent when none). */
  readonly conflicts?: number;
  /** The last error seen for this target, truncated and scrubbed; null when there was none. */
  readonly error: string | null;
  /** ms since epoch */
  readonly at: number;
  /** What the upgrade kept to take itself back (`undo`): read by `upshift undo`, never reported. */
  readonly undo?: unknown;
}

/** The outcomes a report can be filtered by (`upshift report --outcome`, the API's `?outcome=`). */
export const REPORT_OUTCOMES = [
  ...(Object.keys(DRY_RUN_OUTCOME) as Outcome[]),
  ...Object.values(DRY_RUN_OUTCOME),
  'pending',
] as const satisfies readonly (RecordedOutcome | 'pending')[];

/** A line of the report: a finished target's record, or a target still `pending`. */
export interface ReportLine {
  readonly target: string;
  readonly fields: Record<string, string | number>;
  readonly outcome: RecordedOutcome | 'pending';
  readonly reason: ReasonCode | null;
  readonly attempts: number;
  readonly retryAfterWaits: number;
  readonly error: string | null;
  readonly at: number | null;
}

/**
 * Streams one line per target of a campaign, in batches, so a million-target report never sits
 * in memory: first the finished targets (the outcomes hash), then the ones still `pending`
 * (waiting in their groups, parked for a retry, or running). `outcome` filters.
 */
export async function* streamReport(
  redis: RedisClient,
  prefix: string,
  campaignId: string,
  opts: { outcome?: string; batch?: number } = {},
): AsyncIterable<ReportLine> {
  const keys = campaignKeys(prefix, campaignId);
  const batch = opts.batch ?? DEFAULTS.recordScanBatch;
  const specJson = await redis.get(keys.spec);
  const type = specJson === null ? undefined : (JSON.parse(specJson) as { operation: { type: string } }).operation.type;
  // Only an undo campaign's targets carry kept data in `@undo`; any other campaign's target may
  // have a field of that name of its own, and the report shows it.
  const ownFields = type !== undefined && isUndoType(type) ? withoutCarry : (f: Record<string, string | number>) => f;
  if (opts.outcome !== 'pending') {
    const keep = (m: Marker) => opts.outcome === undefined || m.outcome === opts.outcome;
    for await (const records of scanRecords(redis, prefix, campaignId, keep, batch)) {
      for (const { targetKey, marker, json } of records) {
        yield json === undefined ? markerLine(targetKey, marker) : toLine(targetKey, JSON.parse(json) as OutcomeRecord, ownFields);
      }
    }
  }
  if (opts.outcome !== undefined && opts.outcome !== 'pending') return;
  if (type === undefined) return;
  const op = operationFor(type);
  for await (const entry of pendingEntries(redis, prefix, campaignId, batch)) {
    const fields = ownFields(JSON.parse(entry) as Record<string, string | number>);
    const target = op.targetKey(fields);
    // A target that finished while we read is reported once, from the outcomes above.
    if ((await redis.hexists(keys.outcomes, target)) === 1) continue;
    yield { target, fields, outcome: 'pending', reason: null, attempts: 0, retryAfterWaits: 0, error: null, at: null };
  }
}

/** Every target entry of a campaign that has no outcome yet, wherever the scheduler holds it. */
async function* pendingEntries(redis: RedisClient, prefix: string, campaignId: string, batch: number): AsyncIterable<string> {
  const keys = campaignKeys(prefix, campaignId);
  const sched = schedulerKeys(prefix);
  for (const gid of (await redis.hkeys(keys.groups)).filter((f) => /^\d+$/.test(f))) {
    for (let start = 0; ; start += batch) {
      const entries = await redis.lrange(keys.group(Number(gid)), start, start + batch - 1);
      yield* entries;
      if (entries.length < batch) break;
    }
  }
  let cursor = '0';
  do {
    const [next, members] = await redis.zscan(sched.retry, cursor, 'MATCH', `${campaignId}|*`, 'COUNT', batch);
    cursor = next;
    for (let i = 0; i < members.length; i += 2) yield members[i]!.slice(members[i]!.indexOf('|', campaignId.length + 1) + 1);
  } while (cursor !== '0');
  cursor = '0';
  do {
    const [next, flat] = await redis.hscan(sched.inflight, cursor, 'MATCH', `${campaignId}.*`, 'COUNT', batch);
    cursor = next;
    for (let i = 1; i < flat.length; i += 2) yield flat[i]!.replace(/^\d+\|[^|]*\|/, '');
  } while (cursor !== '0');
}

/** A finished target whose record expired while the report read it: what the marker says. */
function markerLine(target: string, m: Marker): ReportLine {
  return { target, fields: {}, outcome: m.outcome, reason: m.reason, attempts: 0, retryAfterWaits: 0, error: null, at: null };
}

/** An undo campaign's target without the kept data it carries: the target's own fields. */
function withoutCarry(target: Record<string, string | number>): Record<string, string | number> {
  const { [UNDO_FIELD]: _kept, ...fields } = target;
  return fields;
}

function toLine(target: string, r: OutcomeRecord, ownFields: (f: Record<string, string | number>) => Record<string, string | number>): ReportLine {
  return {
    target,
    fields: ownFields(r.target),
    outcome: r.outcome,
    reason: r.reason,
    attempts: r.attempts,
    retryAfterWaits: r.retryAfterWaits ?? 0,
    error: r.error,
    at: r.at,
  };
}

const CSV_COLUMNS = ['target', 'outcome', 'reason', 'attempts', 'error', 'at'] as const;

export function csvHeader(): string {
  return CSV_COLUMNS.join(',');
}

export function csvLine(l: ReportLine): string {
  return CSV_COLUMNS.map((c) => csvCell(l[c])).join(',');
}

/** Put before a cell a spreadsheet would run as a formula, so it reads as text. */
const FORMULA_DEFUSER = "'";

function csvCell(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  // Quote, and defuse cells a spreadsheet would run as a formula.
  const safe = /^[=+\-@\t\r]/.test(s) ? FORMULA_DEFUSER + s : s;
  // Quoted too: the other characters some readers take as a line break (VT, FF, NEL, U+2028/9),
  // so no cell can start a record of its own.
  return /[",\n\r\u000b\u000c\u0085\u2028\u2029]/.test(safe) || safe !== s ? `"${safe.replace(/"/g, '""')}"` : safe;
}
