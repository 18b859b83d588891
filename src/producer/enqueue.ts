import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { RedisClient } from '../shared/redis.js';
import { discoverCampaign } from './discover.js';
import { campaignMeta, GroupTable } from './groups.js';
import { storeWindows } from '../shared/window-store.js';
import {
  campaignKeys,
  CatalogueError,
  catalogueMessage,
  DEFAULTS,
  eventsChannel,
  InputError,
  loadScripts,
  operationFor,
  rolloutPlan,
  type PlannedStep,
  type RolloutSpec,
  schedulerKeys,
  ScriptError,
  validateSpec,
  validateTarget,
  withSpan,
  registeredEntry,
  checkNotifiers,
  type CampaignSpec,
  type ConnectionRegistry,
  type HttpClient,
} from '../shared/index.js';

export interface EnqueueResult {
  readonly campaignId: string;
  readonly total: number;
  /** false when the campaign id existed already: nothing new was enqueued. */
  readonly created: boolean;
  /** true when discovery goes on in the background (`discoveryInBackground`): `total` grows as it pages. */
  readonly discovering?: boolean;
}

/** A target as it arrives, with the line it came from (1-based) for error messages. */
export interface SourcedTarget {
  readonly line: number;
  readonly value: unknown;
}

export interface EnqueueOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  /** Named in error messages: a file name, `stdin`, `targets`. */
  readonly source?: string;
  readonly chunkSize?: number;
  /** How long a finished campaign's data is kept (default `DEFAULTS.retentionMs`, 7 days). */
  readonly retentionMs?: number;
  /** HTTP client for discovery's search calls (one of its own when absent). */
  readonly http?: HttpClient;
  /** The operator's connections registry (`loadConnections`): the only connections a campaign may use. */
  readonly connections: ConnectionRegistry;
  /**
   * A discovery spec returns once the campaign exists, and its paging goes to this callback,
   * which must handle its end and its (scrubbed) errors. Without it, enqueue waits for the end.
   */
  readonly discoveryInBackground?: (paging: Promise<{ total: number }>, campaignId: string) => void;
}

function generateId(): string {
  return `c-${Date.now().toString(36)}-${randomBytes(5).toString('hex')}`;
}

/** The spec as stored: validated, defaults applied, id fixed, inline targets left out (a discovery query stays). */
function storedSpec(spec: CampaignSpec, id: string): CampaignSpec & { readonly id: string } {
  const { targets, ...rest } = spec;
  return targets !== undefined && !Array.isArray(targets) ? { ...rest, targets, id } : { ...rest, id };
}

async function* numbered(items: AsyncIterable<unknown> | Iterable<unknown>): AsyncIterable<SourcedTarget> {
  let line = 0;
  for await (const value of items) yield { line: ++line, value };
}

/**
 * Library entry point for other services: validates the spec and every target, then creates
 * the campaign and its work. Invalid input throws `InputError` and leaves nothing in Redis.
 * Targets come from `targets`, or from the spec's inline `targets` when that is omitted.
 */
export async function enqueueCampaign(
  rawSpec: unknown,
  targets: AsyncIterable<unknown> | Iterable<unknown> | undefined,
  opts: EnqueueOptions,
): Promise<EnqueueResult> {
  const spec = validateSpec(rawSpec, opts.source ?? 'spec', opts.connections);
  return enqueueSourced(spec, targets === undefined ? undefined : numbered(targets), opts);
}

/**
 * As `enqueueCampaign`, for callers that number their own lines (the NDJSON reader).
 *
 * Targets are written straight into the campaign's group lists (one list per combination of
 * limit key values) while the campaign is registered as staging; the commit script then
 * creates the status hash and puts the groups on the scheduler's ring in one step. Until then
 * no worker sees the campaign, and on any error the staged lists are deleted.
 */
export async function enqueueSourced(
  spec: CampaignSpec,
  sourced: AsyncIterable<SourcedTarget> | undefined,
  opts: EnqueueOptions,
): Promise<EnqueueResult> {
  const attributes = { 'upshift.operation.type': spec.operation.type, ...(spec.id ? { 'upshift.campaign.id': spec.id } : {}) };
  return withSpan('upshift.enqueue', attributes, async (span) => {
    const result = await stageAndCommit(spec, sourced, opts);
    span?.setAttributes({ 'upshift.campaign.id': result.campaignId, 'upshift.targets.total': result.total, 'upshift.created': result.created });
    return result;
  });
}

async function stageAndCommit(
  spec: CampaignSpec,
  sourced: AsyncIterable<SourcedTarget> | undefined,
  opts: EnqueueOptions,
): Promise<EnqueueResult> {
  const { redis, prefix } = opts;
  const chunkSize = opts.chunkSize ?? DEFAULTS.stageChunkSize;
  checkRegistered(spec, opts.connections);
  if (sourced !== undefined && spec.targets !== undefined) {
    throw new InputError('spec', 'targets are given both inline and as a separate list', { field: 'targets', fix: 'give one' });
  }
  if (spec.targets !== undefined && !Array.isArray(spec.targets)) {
    const campaignId = spec.id ?? generateId();
    const stored = storedSpec(spec, campaignId);
    await existingCampaign(redis, campaignKeys(prefix, campaignId).spec, stored);
    let backgrounded = false;
    const found = await discoverCampaign(stored, spec.targets.discover, {
      redis,
      prefix,
      connections: opts.connections,
      ...(opts.retentionMs === undefined ? {} : { retentionMs: opts.retentionMs }),
      ...(opts.http === undefined ? {} : { http: opts.http }),
      ...(opts.discoveryInBackground === undefined
        ? {}
        : {
            background: (paging: Promise<{ total: number }>) => {
              backgrounded = true;
              opts.discoveryInBackground!(paging, campaignId);
            },
          }),
    });
    return { campaignId, ...found, ...(backgrounded ? { discovering: true } : {}) };
  }
  let source = opts.source ?? 'targets';
  let items = sourced;
  if (items === undefined) {
    if (spec.targets === undefined) {
      throw new InputError('spec', 'no targets: add "targets" to the spec or pass a targets file', { field: 'targets' });
    }
    items = numbered(spec.targets as unknown[]);
    source = 'spec targets';
  }

  const campaignId = spec.id ?? generateId();
  const keys = campaignKeys(prefix, campaignId);
  const stored = storedSpec(spec, campaignId);
  const op = operationFor(spec.operation.type);
  const scripts = loadScripts(redis, prefix);

  if (await existingCampaign(redis, keys.spec, stored)) {
    return { campaignId, total: Number(await redis.hget(keys.status, 'total')), created: false };
  }
  await beginStaging(redis, prefix, campaignId);

  // Dedup happens in Redis (stage-1.lua), so this process holds one chunk at a time.
  const groups = new GroupTable(stored);
  let chunk: (string | number)[] = [];
  let total = 0;
  try {
    const flush = async (): Promise<void> => {
      await groups.save(redis, prefix, campaignId);
      if (chunk.length === 0) return;
      total += await scripts.stage(campaignId, Date.now() + DEFAULTS.stagingTtlMs, chunk);
      chunk = [];
    };
    for await (const { line, value } of items) {
      const target = validateTarget(value, op.type, source, line);
      chunk.push(op.targetKey(target), groups.gidOf(target, source, line), JSON.stringify(target));
      if (chunk.length >= chunkSize * 3) await flush();
    }
    await flush();
    await redis.hset(keys.meta, campaignMeta(stored, opts.retentionMs));
    if (stored.schedule !== undefined) await storeWindows(redis, keys.win, stored.schedule, groups.zones);
    const { rollout } = stored;
    if (rollout !== undefined && total > 0) {
      const planned = groups.steps.size > 0 ? await plannedSteps(redis, prefix, campaignId, rollout, groups) : rolloutPlan(rollout, [], total);
      await redis.hset(keys.meta, {
        rollout: JSON.stringify(planned.limits),
        rolloutPlan: JSON.stringify(planned.plan),
        minSamples: rollout.minSamples,
        gate: rollout.gate,
        ...(rollout.maxFailureRatio === undefined ? {} : { maxFailureRatio: rollout.maxFailureRatio }),
        // A dry run changed nothing: its breach pauses it, there is nothing to undo.
        ...(rollout.onBreach === 'undo' && !stored.dryRun ? { onBreach: 'undo' } : {}),
      });
    }

    const committed = await scripts.commitCampaign({
      campaignId,
      specJson: JSON.stringify(stored),
      operation: op.type,
      name: spec.name ?? '',
      total,
      groups: groups.size,
      channel: eventsChannel(prefix),
    });
    if (committed.created && stored.warnings !== undefined) await redis.hset(keys.status, 'warnings', JSON.stringify(stored.warnings));
    return { campaignId, total: committed.total, created: committed.created };
  } catch (err) {
    await discardStaging(redis, prefix, campaignId).catch(() => undefined);
    // Another producer of the same id committed it while this one staged (two workers making
    // one breach's undo campaign): the same spec is the no-op it would have been a moment later.
    if (err instanceof ScriptError && err.code === 'ALREADY_COMMITTED' && (await existingCampaign(redis, keys.spec, stored))) {
      await redis.zrem(schedulerKeys(prefix).staging, campaignId);
      return { campaignId, total: Number(await redis.hget(keys.status, 'total')), created: false };
    }
    throw err;
  }
}

/**
 * A cohort rollout's steps from what was staged: each group's list holds its targets once
 * (stage-1.lua dropped duplicates), and its step is part of the group, so the groups' lengths
 * give each step's count without a second pass over the targets.
 */
async function plannedSteps(
  redis: RedisClient,
  prefix: string,
  campaignId: string,
  rollout: RolloutSpec,
  groups: GroupTable,
): Promise<{ limits: number[]; plan: PlannedStep[] }> {
  const keys = campaignKeys(prefix, campaignId);
  const gids = [...groups.steps.keys()];
  const cohorts = rollout.steps.map(() => 0);
  let rest = 0;
  for (let i = 0; i < gids.length; i += DEFAULTS.stageChunkSize) {
    const batch = gids.slice(i, i + DEFAULTS.stageChunkSize);
    const pipeline = redis.pipeline();
    for (const gid of batch) pipeline.llen(keys.group(gid));
    const lengths = (await pipeline.exec()) ?? [];
    batch.forEach((gid, j) => {
      const n = Number(lengths[j]?.[1] ?? 0);
      const step = groups.steps.get(gid);
      if (step === 'r') rest += n;
      else cohorts[Number(step)] = (cohorts[Number(step)] ?? 0) + n;
    });
  }
  return rolloutPlan(rollout, cohorts, rest);
}

/**
 * `enqueueSourced` takes a spec already validated, from any library caller: the connection it
 * carries must still be exactly the registry's, or nothing is written and no call is made.
 */
function checkRegistered(spec: CampaignSpec, connections: ConnectionRegistry): void {
  const found = registeredEntry(spec.connection, connections, spec.operation.type);
  if ('error' in found || found.entry.privateNetwork !== spec.connection.privateNetwork) {
    throw new InputError('spec', 'error' in found ? found.error : `connection "${spec.connection.name}" differs from the registered one`, {
      field: 'connection',
      code: 'CONNECTION_NOT_REGISTERED',
    });
  }
  checkNotifiers(spec.notify ?? [], connections);
}

/**
 * Registers this producer as the one staging the campaign. A staging left by a crashed
 * producer (its deadline passed) is discarded and taken over; a live one is refused.
 */
async function beginStaging(redis: RedisClient, prefix: string, campaignId: string): Promise<void> {
  const staging = schedulerKeys(prefix).staging;
  const deadline = Date.now() + DEFAULTS.stagingTtlMs;
  if ((await redis.zadd(staging, 'NX', deadline, campaignId)) === 1) return;
  const other = Number(await redis.zscore(staging, campaignId));
  if (other > Date.now()) {
    throw new CatalogueError('STAGING_IN_PROGRESS', catalogueMessage('STAGING_IN_PROGRESS', { id: campaignId }));
  }
  await discardStaging(redis, prefix, campaignId);
  await redis.zadd(staging, deadline, campaignId);
}

/** Deletes what a producer staged for a campaign that was never committed. */
export async function discardStaging(redis: RedisClient, prefix: string, campaignId: string): Promise<void> {
  const keys = campaignKeys(prefix, campaignId);
  if ((await redis.exists(keys.status)) === 1) return;
  const fields = await redis.hkeys(keys.groups);
  const lists = fields.filter((f) => /^\d+$/.test(f)).map((gid) => keys.group(Number(gid)));
  for (let i = 0; i < lists.length; i += DEFAULTS.discardUnlinkBatch) await redis.unlink(...lists.slice(i, i + DEFAULTS.discardUnlinkBatch));
  await redis.unlink(keys.groups, keys.meta, keys.seen, keys.win);
  await redis.zrem(schedulerKeys(prefix).staging, campaignId);
}

/** A campaign id seen before: the same spec is a no-op, another spec under the same id is refused. */
async function existingCampaign(redis: RedisClient, specKey: string, stored: CampaignSpec): Promise<boolean> {
  const json = await redis.get(specKey);
  if (json === null) return false;
  if (!isDeepStrictEqual(JSON.parse(json), JSON.parse(JSON.stringify(stored)))) {
    throw new InputError('spec', catalogueMessage('CAMPAIGN_EXISTS', { id: String(stored.id) }), { field: 'id', code: 'CAMPAIGN_EXISTS' });
  }
  return true;
}
