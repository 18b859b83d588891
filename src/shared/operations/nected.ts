import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson, type HttpResponse } from '../http.js';
import { isPlainObject, nameString } from './common.js';
import { applyJsonPatch, patchHolds, patchSchema } from './patch.js';
import type { ApplyContext, OperationModule, PlatformAdapter } from './types.js';

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
    const { operation, target, send, onConflict } = ctx;
    const segments = ['dev', 'v1', 'workflow', String(target.entityId)];
    let conflict: UpshiftError | undefined;
    for (let round = 0; round <= operation.conflictRetries; round++) {
      const { checksum, graph } = await readWorkflow(ctx, segments);
      const { result, changed } = applyJsonPatch(graph, operation.patch);
      if (!changed) return { outcome: 'skipped', reason: 'ALREADY_CURRENT' };

      const res = await send({ method: 'PATCH', segments, headers: headers(ctx), json: { ...result, checksum } });
      if (isSuccess(res.status)) {
        if (ctx.verify) await verifyPatch(ctx, segments, result);
        return { outcome: 'upgraded', reason: 'UPGRADED' };
      }
      conflict = patchError(res);
      if (conflict.code !== 'CHECKSUM_CONFLICT') throw conflict;
      onConflict();
    }
    // As RETRIES_EXHAUSTED carries the last transient error, this carries the last conflict.
    throw new UpshiftError(
      'CONFLICT_RETRIES_EXHAUSTED',
      `checksum still stale after ${operation.conflictRetries + 1} rounds; last answer: ${conflict?.code}: ${conflict?.message}`,
      { cause: conflict },
    );
  },
};

export const nected: PlatformAdapter<'nected'> = {
  name: 'nected',
  secretHeaders: ['nected-api-key'],
  operations: [nectedUpdateWorkflow],
};
