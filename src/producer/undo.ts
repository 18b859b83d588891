import { createHash } from 'node:crypto';
import type { RedisClient } from '../shared/redis.js';
import { cancelCampaign, unknownCampaign, type ControlOptions } from './control.js';
import { enqueueSourced, type EnqueueResult, type SourcedTarget } from './enqueue.js';
import {
  campaignIndexKey,
  campaignKeys,
  CatalogueError,
  catalogueMessage,
  DEFAULTS,
  encodeCarry,
  eventsChannel,
  InputError,
  isUndoType,
  loadScripts,
  operationFor,
  readStatus,
  registeredEntry,
  scanRecords,
  UNDO_FIELD,
  UNDO_PREFIX,
  type CampaignSpec,
  type ConnectionRegistry,
  type Marker,
  type OperationModule,
  type OutcomeRecord,
  type Target,
  type UndoCarry,
} from '../shared/index.js';

/**
 * Undo campaigns (README, "Undo"): `undoCampaign(id)` makes campaign `<id>-undo`, whose targets
 * are `id`'s upgraded ones, each carrying what its upgrade kept, and whose operation
 * `undo:<type>` puts each back (operations/undo.ts). It is a campaign like any other: same
 * connection, same limits, its own status hash and report, pause/resume/cancel/retry.
 */

export interface UndoOptions extends ControlOptions {
  /** The operator's connections registry: the undo campaign is checked against it as any campaign is. */
  readonly connections: ConnectionRegistry;
  /** Make the undo campaign a dry run (`<id>-undo-dry`): its reads are made, nothing is written, the original is left running. */
  readonly dryRun?: boolean;
  /** How long to wait for a running original's targets in flight once it is cancelled. */
  readonly waitMs?: number;
  readonly chunkSize?: number;
}

export interface UndoResult extends EnqueueResult {
  /** The campaign taken back. */
  readonly undoOf: string;
  /** True when the original was still running and this undo cancelled it first. */
  readonly cancelledOriginal: boolean;
}

const SUFFIX = { real: '-undo', dry: '-undo-dry' } as const;

/**
 * The undo campaign's id: `<id>-undo` (`<id>-undo-dry` for a dry run), or, when that would be
 * longer than a campaign id may be, the id cut short with a digest of the whole id in it.
 */
export function undoCampaignId(id: string, dryRun = false): string {
  const suffix = dryRun ? SUFFIX.dry : SUFFIX.real;
  if (id.length + suffix.length <= 64) return `${id}${suffix}`;
  const tag = createHash('sha256').update(id).digest('hex').slice(0, 10);
  return `${id.slice(0, 64 - suffix.length - tag.length - 1)}-${tag}${suffix}`;
}

/**
 * Makes (or finds, when it exists) the undo campaign of campaign `id`. A campaign still running
 * is cancelled first and its targets in flight are waited for, so nothing is reverted before it
 * was applied (a dry run leaves it running and previews the targets upgraded so far).
 */
export async function undoCampaign(id: string, opts: UndoOptions): Promise<UndoResult> {
  const { redis, prefix } = opts;
  const keys = campaignKeys(prefix, id);
  const specJson = await redis.get(keys.spec);
  if (specJson === null) {
    // Still listed in the index but without data: its retention ran out.
    if ((await redis.zscore(campaignIndexKey(prefix), id)) !== null) {
      throw new CatalogueError('CAMPAIGN_EXPIRED', catalogueMessage('CAMPAIGN_EXPIRED', { id }));
    }
    throw unknownCampaign(id);
  }
  const spec = { ...(JSON.parse(specJson) as CampaignSpec), id };
  const refuse = (why: string) => new InputError('campaign', catalogueMessage('UNDO_NOT_POSSIBLE', { id, why }), { field: 'id', code: 'UNDO_NOT_POSSIBLE' });
  if (isUndoType(spec.operation.type)) throw refuse('it is an undo campaign itself; run the original campaign again instead');
  if (spec.dryRun) throw refuse('it was a dry run and changed nothing');
  const dryRun = opts.dryRun === true;
  const undoId = undoCampaignId(id, dryRun);
  // Checked before a running original is cancelled: an undo that cannot be made cancels nothing.
  const registered = registeredEntry(spec.connection, opts.connections, spec.operation.type);
  if ('error' in registered) {
    throw new InputError('campaign', registered.error, { field: 'connection', code: 'CONNECTION_NOT_REGISTERED' });
  }
  const takenJson = await redis.get(campaignKeys(prefix, undoId).spec);
  const taken = takenJson === null ? null : (JSON.parse(takenJson) as Partial<CampaignSpec> & { operation?: { undoOf?: unknown } });
  if (taken !== null && taken.operation?.undoOf !== id) {
    throw new InputError('campaign', catalogueMessage('CAMPAIGN_EXISTS', { id: undoId }), { field: 'id', code: 'CAMPAIGN_EXISTS' });
  }

  let cancelledOriginal = false;
  if (!dryRun) {
    const status = await readStatus(redis, prefix, id);
    if (status !== null && status.finishedAt === undefined) {
      // Cancelling drains the targets not started; also for a campaign cancelled before without
      // its drain (a breach with onBreach "undo" cancels in the scheduler, and leaves it to this).
      await cancelCampaign(id, opts);
      cancelledOriginal = status.state !== 'cancelled';
      await waitUntilEnded(redis, prefix, id, opts.waitMs ?? DEFAULTS.undoWaitMs);
    }
  }

  const op = operationFor(spec.operation.type);
  const undoSpec: CampaignSpec & { id: string } = {
    id: undoId,
    // The id, not the original's name: an id is short ASCII, so nothing needs cutting.
    name: `undo of ${id}`,
    connection: spec.connection,
    operation: { ...spec.operation, type: `${UNDO_PREFIX}${spec.operation.type}`, undoOf: id },
    retry: spec.retry,
    limits: spec.limits,
    dryRun,
    verify: false,
    undo: false,
    // Whoever asked to hear of the original hears of its undo too, through the notifiers this
    // deployment still registers (one since removed would refuse the undo itself).
    ...(dryRun ? {} : notifyOf(spec, opts.connections)),
  };
  const retentionMs = Number(await redis.hget(keys.meta, 'retentionMs')) || undefined;
  // Made before (by this caller, or a worker on a breach): it stands as it is, whatever this
  // caller's registry says of notifiers; only the links and the event are made again.
  const result =
    taken !== null
      ? { campaignId: undoId, total: Number(await redis.hget(campaignKeys(prefix, undoId).status, 'total')), created: false }
      : await enqueueSourced(undoSpec, writtenTargets(redis, prefix, spec, op, opts.chunkSize ?? DEFAULTS.recordScanBatch), {
          redis,
          prefix,
          connections: opts.connections,
          source: `campaign ${id}`,
          ...(opts.chunkSize === undefined ? {} : { chunkSize: opts.chunkSize }),
          ...(retentionMs === undefined ? {} : { retentionMs }),
        });
  // Linked both ways, also when it existed already (a link lost to a crash is made again).
  await redis.hset(campaignKeys(prefix, undoId).status, 'undoOf', id);
  if (!dryRun) {
    await redis.hset(keys.status, 'undoCampaign', undoId);
    // Also when it existed already: an event lost to a crash here is recorded then (once).
    await loadScripts(redis, prefix).notifyEvent(id, 'undo-started', { undoCampaign: undoId }, eventsChannel(prefix));
  }
  return { ...result, undoOf: id, cancelledOriginal };
}

function notifyOf(spec: CampaignSpec, connections: ConnectionRegistry): Pick<CampaignSpec, 'notify'> {
  const notify = (spec.notify ?? []).filter((n) => Object.hasOwn(connections.notifiers ?? {}, n.to));
  return notify.length > 0 ? { notify } : {};
}

/**
 * The original's targets that were written: its upgraded ones, and any other whose record keeps
 * a pre-image (a write whose answer was lost before the target failed or was cancelled: it may
 * have landed; its revert reads first and leaves it alone if not). Each carries in `@undo` what
 * was kept; more than `maxUndoCarryBytes` fails that target alone `NOT_REVERTIBLE`.
 */
async function* writtenTargets(
  redis: RedisClient,
  prefix: string,
  spec: CampaignSpec & { id: string },
  op: Pick<OperationModule, 'targetIdField' | 'targetVersionField'>,
  batch: number,
): AsyncIterable<SourcedTarget> {
  let line = 0;
  const real = (m: Marker) => m.outcome === 'upgraded' || m.outcome === 'skipped' || m.outcome === 'failed';
  for await (const records of scanRecords(redis, prefix, spec.id, real, batch)) {
    for (const { targetKey, marker, json } of records) {
      if (json === undefined) {
        // The marker outlived its record: the target is known by its key alone.
        if (marker.outcome === 'upgraded') yield { line: ++line, value: { ...targetOfKey(op, targetKey), [UNDO_FIELD]: encodeCarry({ x: 1 }) } };
        continue;
      }
      const rec = JSON.parse(json) as OutcomeRecord;
      if (marker.outcome !== 'upgraded' && rec.undo === undefined) continue;
      let carried =
        rec.undo !== undefined
          ? encodeCarry({ k: rec.undo })
          : encodeCarry({ n: spec.undo === false ? `campaign ${spec.id} ran with undo: false, so nothing was kept to revert this target from` : '' });
      if (carried.length > DEFAULTS.maxUndoCarryBytes) {
        carried = encodeCarry({ n: `the data kept to revert this target is ${carried.length} bytes, over the ${DEFAULTS.maxUndoCarryBytes} an undo target may carry` });
      }
      yield { line: ++line, value: { ...rec.target, [UNDO_FIELD]: carried } };
    }
  }
}

/**
 * A target's fields from its key alone: `<id>@<version>` when the operation targets versions
 * (the key `includes/meta.lua` builds), else the id. Putting the whole key in the id field would
 * fail the undo's validation for an id near its length limit, refusing the whole undo.
 */
export function targetOfKey(op: Pick<OperationModule, 'targetIdField' | 'targetVersionField'>, key: string): Target {
  const at = /^(.*)@(\d+)$/.exec(key);
  if (op.targetVersionField !== undefined && at !== null) return { [op.targetIdField]: at[1]!, [op.targetVersionField]: Number(at[2]) };
  return { [op.targetIdField]: key };
}

/**
 * Resolves once campaign `id` has ended (every target has an outcome): announced on the events
 * channel, checked once after subscribing so an end in between is not missed.
 */
async function waitUntilEnded(redis: RedisClient, prefix: string, id: string, waitMs: number): Promise<void> {
  const sub = redis.duplicate();
  let timer: NodeJS.Timeout | undefined;
  try {
    const ended = new Promise<void>((resolve) => {
      sub.on('message', (_channel: string, message: string) => {
        const event = JSON.parse(message) as { id?: string; ended?: boolean };
        if (event.id === id && event.ended === true) resolve();
      });
    });
    await sub.subscribe(eventsChannel(prefix));
    const status = await readStatus(redis, prefix, id);
    if (status === null || status.finishedAt !== undefined) return;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), waitMs);
    });
    if ((await Promise.race([ended, timedOut])) === 'timeout') {
      const now = await readStatus(redis, prefix, id);
      if (now !== null && now.finishedAt === undefined) {
        throw new CatalogueError('UNDO_WAIT_TIMEOUT', catalogueMessage('UNDO_WAIT_TIMEOUT', { id, active: now.active, ms: waitMs }));
      }
    }
  } finally {
    clearTimeout(timer);
    await sub.quit().catch(() => sub.disconnect());
  }
}
