import type { RedisClient } from '../shared/redis.js';
import { GroupTable } from './groups.js';
import {
  campaignIndexKey,
  campaignKeys,
  eventsChannel,
  flushOutbox,
  InputError,
  isReasonCode,
  loadScripts,
  operationFor,
  readStatus,
  scanRecords,
  ScriptError,
  UpshiftError,
  type CampaignSpec,
  type CampaignStatus,
  type ControlAction,
  type Marker,
  type OutcomeRecord,
} from '../shared/index.js';
import { DEFAULTS } from '../shared/config.js';

export interface ControlOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
}

/** Thrown when a campaign id names nothing (exit 2 in the CLI: the input is wrong). */
export function unknownCampaign(id: string): InputError {
  return new InputError('campaign', `no campaign "${id}"`, { field: 'id', code: 'CAMPAIGN_NOT_FOUND' });
}

async function control(id: string, action: ControlAction, opts: ControlOptions, reason = ''): Promise<string> {
  const scripts = loadScripts(opts.redis, opts.prefix);
  const res = await scripts.control(id, action, reason, eventsChannel(opts.prefix)).catch((err: unknown) => {
    if (err instanceof ScriptError && err.code === 'NO_SUCH_CAMPAIGN') throw unknownCampaign(id);
    throw err;
  });
  if (!res.changed) {
    throw new InputError('campaign', `cannot ${action} campaign "${id}": it is ${res.state}`, { field: 'state', code: 'CAMPAIGN_STATE_CONFLICT' });
  }
  return res.state;
}

/** No new target starts once this returns; targets in flight finish. */
export function pauseCampaign(id: string, opts: ControlOptions, reason = 'OPERATOR'): Promise<string> {
  return control(id, 'pause', opts, reason);
}

export function resumeCampaign(id: string, opts: ControlOptions): Promise<string> {
  return control(id, 'resume', opts);
}

/** Starts the next rollout step of a campaign waiting at a manual gate. */
export function promoteCampaign(id: string, opts: ControlOptions): Promise<string> {
  return control(id, 'promote', opts);
}

/**
 * Stops the campaign and records every target that has not started as skipped/CANCELLED, in
 * chunks. Idempotent: cancelling again finishes an interrupted drain. Returns the targets drained.
 */
export async function cancelCampaign(id: string, opts: ControlOptions, chunk = DEFAULTS.cancelBatch): Promise<number> {
  await control(id, 'cancel', opts);
  const scripts = loadScripts(opts.redis, opts.prefix);
  let drained = 0;
  for (;;) {
    const n = await scripts.cancelPending(id, chunk, eventsChannel(opts.prefix));
    drained += n;
    // The skipped records went to the outbox; move them out of the deployment's slot now.
    await flushOutbox(opts.redis, scripts, opts.prefix, id);
    if (n === 0) return drained;
  }
}

/**
 * Runs a campaign's failed targets again (only those with `reason`, when given). Their outcome
 * is removed and they start over with fresh attempts; counters stay exact.
 */
export async function retryCampaign(id: string, opts: ControlOptions & { reason?: string; chunk?: number }): Promise<number> {
  const { redis, prefix } = opts;
  if (opts.reason !== undefined && !isReasonCode(opts.reason)) {
    throw new InputError('arguments', `unknown reason code "${opts.reason}" (see docs/REASONS.md)`, { field: 'reason' });
  }
  const keys = campaignKeys(prefix, id);
  const specJson = await redis.get(keys.spec);
  if (specJson === null) throw unknownCampaign(id);
  const [undoneBy, cohortStep] = await redis.hmget(keys.status, 'undoCampaign', 'rolloutAt');
  if (cohortStep !== null) {
    // A failed target of the rest would go back to a group only a later step serves, and the
    // running step would wait for it (README, "Staged rollout").
    throw new InputError('campaign', `cannot retry campaign "${id}" during a cohort step: retry once it is at its last step or has ended`, {
      field: 'state',
      code: 'CAMPAIGN_STATE_CONFLICT',
    });
  }
  if (undoneBy !== null) {
    // Its undo took back what it wrote; running its failures again would upgrade behind the undo.
    throw new InputError('campaign', `cannot retry campaign "${id}": it was taken back by its undo campaign "${undoneBy}"`, { field: 'state', code: 'CAMPAIGN_STATE_CONFLICT' });
  }
  const spec = { ...(JSON.parse(specJson) as CampaignSpec), id };
  const op = operationFor(spec.operation.type);
  const groups = await GroupTable.load(redis, prefix, spec);
  const scripts = loadScripts(redis, prefix);
  let retried = 0;
  const failed = (m: Marker) => m.outcome === 'failed' && (opts.reason === undefined || m.reason === opts.reason);
  for await (const records of scanRecords(redis, prefix, id, failed, opts.chunk ?? DEFAULTS.recordScanBatch)) {
    const triples: (string | number)[] = [];
    for (const { targetKey, json } of records) {
      // No record: it expired under us (retention); that target cannot be run again.
      if (json === undefined) continue;
      const rec = JSON.parse(json) as OutcomeRecord;
      const gid = groups.find(rec.target);
      if (gid === undefined) throw new UpshiftError('INTERNAL_ERROR', `target ${op.targetKey(rec.target)} has no group`);
      triples.push(targetKey, gid, JSON.stringify(rec.target));
    }
    // Outcomes change under the scan; a target retried twice by this loop is harmless, the
    // script only takes targets whose outcome is still `failed`.
    if (triples.length > 0) retried += await scripts.retryFailed(id, opts.reason ?? '', eventsChannel(prefix), triples);
  }
  // A completed campaign runs again: its records keep no retention expiry (the script did the
  // same for the keys in the deployment's slot).
  if (retried > 0) await redis.persist(keys.records);
  return retried;
}

export interface CampaignSummary extends CampaignStatus {
  /** ms since the campaign was created */
  readonly ageMs: number;
}

/** Every campaign still in Redis, newest first. Expired ones leave the index here. */
export async function listCampaigns(opts: ControlOptions): Promise<CampaignSummary[]> {
  const { redis, prefix } = opts;
  const ids = await redis.zrevrange(campaignIndexKey(prefix), 0, -1);
  const out: CampaignSummary[] = [];
  const gone: string[] = [];
  const now = Date.now();
  for (const id of ids) {
    const s = await readStatus(redis, prefix, id);
    if (s === null) gone.push(id);
    else out.push({ ...s, ageMs: now - (s.createdAt ?? now) });
  }
  if (gone.length > 0) await redis.zrem(campaignIndexKey(prefix), ...gone);
  return out;
}
