import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson, type HttpResponse } from '../http.js';
import { isPlainObject, nameString } from './common.js';
import { applyJsonPatch, patchHolds, patchSchema, type JsonPatch } from './patch.js';
import type { ApplyContext, ApplyResult, OperationModule, PlatformAdapter } from './types.js';
import { BACK_ALREADY, CHANGED_SINCE_UPGRADE, digest, inversePatch, keptObject, REVERTED, wroteEarlier } from './undo.js';

const schema = z.strictObject({
  type: z.literal('nected.updateWorkflow'),
  patch: patchSchema,
  branch: nameString.optional(),
  /** Fetch-patch-send rounds after a stale checksum before the target fails. */
  conflictRetries: z.number().int().min(0).max(50).default(5),
});
type Op = z.infer<typeof schema>;

/**
 * The PATCH's refusal. The document leaves the stale-checksum status open: 409, or a 400 that
 * names the checksum is `CHECKSUM_CONFLICT` (transient: the round loop fetches and sends again).
 */
function patchError(res: HttpResponse): UpshiftError {
  const stale = res.status === 409 || (res.status === 400 && /checksum/i.test(res.text));
  return errorFromResponse(res, 'nected update workflow', stale ? { [res.status]: 'CHECKSUM_CONFLICT' } : {});
}

function headers({ operation, credential }: ApplyContext<Op>): Record<string, string> {
  return {
    'nected-api-key': credential(),
    accept: 'application/json',
    ...(operation.branch === undefined ? {} : { 'nected-branch': operation.branch }),
  };
}

/** The graph as ALREADY_CURRENT compares it (`data` without its checksum), and the checksum. */
async function readWorkflow(ctx: ApplyContext<Op>, segments: string[]): Promise<{ checksum: string; graph: Record<string, unknown> }> {
  const got = await ctx.send({ method: 'GET', segments, headers: headers(ctx) });
  if (!isSuccess(got.status)) throw errorFromResponse(got, 'nected get workflow');
  const body = parseJson(got, 'nected get workflow');
  if (!isPlainObject(body) || !isPlainObject(body.data) || typeof body.data.checksum !== 'string') {
    throw new UpshiftError('UNEXPECTED_RESPONSE', `nected get workflow: no data.checksum: ${got.text.slice(0, 200)}`);
  }
  const { checksum, ...graph } = body.data;
  return { checksum, graph };
}

/**
 * The read-back of `verify`: the graph read again holds what the PATCH sent at every path the
 * patch touched. The checksum is left out (the server issues a new one on every save), so the
 * comparison is the graph's, as for ALREADY_CURRENT.
 */
async function verifyPatch(ctx: ApplyContext<Op>, segments: string[], written: Record<string, unknown>): Promise<void> {
  const { graph } = await readWorkflow(ctx, segments);
  if (!patchHolds(written, graph, ctx.operation.patch)) {
    throw new UpshiftError('VERIFY_MISMATCH', `nected update accepted, but the workflow read back does not hold the patch: ${JSON.stringify(graph).slice(0, 200)}`);
  }
}

/**
 * Nected: `PATCH /dev/v1/workflow/{entity-id}` replaces the full graph under optimistic locking
 * (reference 004). Each round reads the graph and its checksum, patches it, and sends it back;
 * a stale checksum starts another round.
 */
export const nectedUpdateWorkflow: OperationModule<Op> = {
  type: 'nected.updateWorkflow',
  schema,
  targetIdField: 'entityId',
  targetKey: (t) => String(t.entityId),

  async apply(ctx) {
    const { operation, target } = ctx;
    const segments = ['dev', 'v1', 'workflow', String(target.entityId)];
    return rounds(ctx, async ({ checksum, graph }) => {
      // An earlier run's PATCH landed (its answer was lost): not sent again.
      if (wroteEarlier(ctx.earlier, digest(graph))) return { outcome: 'upgraded', reason: 'UPGRADED', undo: ctx.earlier };
      const { result, changed } = applyJsonPatch(graph, operation.patch);
      if (!changed) return { outcome: 'skipped', reason: 'ALREADY_CURRENT' };
      const kept: Kept | undefined = ctx.captureUndo ? { inverse: inversePatch(result, graph), wrote: digest(result), before: digest(graph) } : undefined;
      if (kept) await ctx.keep(kept);
      const res = await ctx.send({ method: 'PATCH', segments, headers: headers(ctx), json: { ...result, checksum } });
      if (!isSuccess(res.status)) return res;
      if (ctx.verify) await verifyPatch(ctx, segments, result);
      if (!kept) return { outcome: 'upgraded', reason: 'UPGRADED' };
      const answered = answeredChecksum(res);
      return { outcome: 'upgraded', reason: 'UPGRADED', undo: answered === undefined ? kept : { ...kept, checksum: answered } };
    });
  },

  /**
   * PATCHes the graph back as it was read before the upgrade, when it is still the one the
   * upgrade saved: its checksum is the one the PATCH answered, or (another save of the same
   * graph, or an answer without a checksum) its digest is that of what the upgrade wrote. A
   * stale checksum starts another round, as for the upgrade.
   */
  async revert(ctx, raw) {
    const kept = keptObject(raw, ctx.operation.type) as unknown as Kept;
    const segments = ['dev', 'v1', 'workflow', String(ctx.target.entityId)];
    return rounds(ctx, async ({ checksum, graph }) => {
      const now = digest(graph);
      if (now === kept.before) return BACK_ALREADY;
      if (checksum !== kept.checksum && now !== kept.wrote) return CHANGED_SINCE_UPGRADE;
      const { result } = applyJsonPatch(graph, kept.inverse);
      const res = await ctx.send({ method: 'PATCH', segments, headers: headers(ctx), json: { ...result, checksum } });
      return isSuccess(res.status) ? REVERTED : res;
    });
  },
};

/** What an update keeps to take itself back. */
interface Kept {
  /** The patch from the graph written back to the graph read. */
  inverse: JsonPatch;
  /** Digests of the graph written and the graph read (checksum aside). */
  wrote: string;
  before: string;
  /** The checksum the PATCH answered (reference 004: `data.checksum`), when it did. */
  checksum?: string;
}

function answeredChecksum(res: HttpResponse): string | undefined {
  try {
    const body: unknown = JSON.parse(res.text);
    return isPlainObject(body) && isPlainObject(body.data) && typeof body.data.checksum === 'string' ? body.data.checksum : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Fetch-patch-send rounds under optimistic locking: each round reads the graph and its
 * checksum and hands them to `round`, which returns a result or the PATCH's refusal. A stale
 * checksum starts another round (counted in `conflicts`), up to `conflictRetries` more.
 */
async function rounds(
  ctx: ApplyContext<Op>,
  round: (read: { checksum: string; graph: Record<string, unknown> }) => Promise<ApplyResult | HttpResponse>,
): Promise<ApplyResult> {
  const segments = ['dev', 'v1', 'workflow', String(ctx.target.entityId)];
  let conflict: UpshiftError | undefined;
  for (let n = 0; n <= ctx.operation.conflictRetries; n++) {
    const answer = await round(await readWorkflow(ctx, segments));
    if (!('status' in answer)) return answer;
    conflict = patchError(answer);
    if (conflict.code !== 'CHECKSUM_CONFLICT') throw conflict;
    ctx.onConflict();
  }
  // As RETRIES_EXHAUSTED carries the last transient error, this carries the last conflict.
  throw new UpshiftError(
    'CONFLICT_RETRIES_EXHAUSTED',
    `checksum still stale after ${ctx.operation.conflictRetries + 1} rounds; last answer: ${conflict?.code}: ${conflict?.message}`,
    { cause: conflict },
  );
}

export const nected: PlatformAdapter<'nected'> = {
  name: 'nected',
  secretHeaders: ['nected-api-key'],
  operations: [nectedUpdateWorkflow],
};
