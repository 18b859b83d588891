import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson, type HttpResponse } from '../http.js';
import { isPlainObject, nameString } from './common.js';
import type { ApplyContext, OperationModule, PlatformAdapter } from './types.js';
import { BACK_ALREADY, CHANGED_SINCE_UPGRADE, keptObject, REVERTED } from './undo.js';

const changes = z
  .strictObject({
    name: z.string().min(1).optional(),
    summary: z.string().optional(),
    owner_id: z.number().int().optional(),
    tags: z.array(z.string()).optional(),
    folders: z.array(z.string()).optional(),
    prerun: z.array(z.unknown()).optional(),
  })
  .refine((c) => Object.values(c).some((v) => v !== undefined), { message: 'needs at least one field to change' });

const schema = z.strictObject({
  type: z.literal('tallyfy.updateRun'),
  orgId: nameString,
  changes,
});

type Op = z.infer<typeof schema>;
type Changes = Op['changes'];

function runSegments({ operation, target }: ApplyContext<Op>): string[] {
  return ['organizations', operation.orgId, 'runs', String(target.runId)];
}

function runHeaders(credential: () => string): Record<string, string> {
  return { authorization: `Bearer ${credential()}`, accept: 'application/json', 'x-tallyfy-client': 'APIClient' };
}

/** The run under `data` of a Tallyfy answer; "200 with an error body" is not success. */
function runOf(res: HttpResponse, what: string): Record<string, unknown> {
  const body = parseJson(res, what);
  if (!isPlainObject(body) || !isPlainObject(body.data)) {
    throw new UpshiftError('UNEXPECTED_RESPONSE', `${what}: 200 without data: ${res.text.slice(0, 200)}`);
  }
  return body.data;
}

/** `GET /organizations/{org_id}/runs/{run_id}` ("get a process run"): the run as it is now. */
async function readRun(ctx: ApplyContext<Op>): Promise<Record<string, unknown>> {
  const res = await ctx.send({ method: 'GET', segments: runSegments(ctx), headers: runHeaders(ctx.credential) });
  if (!isSuccess(res.status)) throw errorFromResponse(res, 'tallyfy get run');
  return runOf(res, 'tallyfy get run');
}

async function putRun(ctx: ApplyContext<Op>, json: Record<string, unknown>, what: string): Promise<Record<string, unknown>> {
  const res = await ctx.send({ method: 'PUT', segments: runSegments(ctx), headers: runHeaders(ctx.credential), json });
  if (!isSuccess(res.status)) throw errorFromResponse(res, what);
  return runOf(res, what);
}

/** The fields an update changes, without `prerun` (kick-off values are read back rendered, see `revert`). */
function changedFields(changes: Changes): string[] {
  return Object.entries(changes).filter(([k, v]) => v !== undefined && k !== 'prerun').map(([k]) => k);
}

/** An absent field, as a value the update can write: what the run shows when it has none. */
const EMPTY: Record<string, unknown> = { summary: '', tags: [], folders: [] };

/**
 * What an update keeps to take itself back: the run's previous value of every field it changes
 * (`null` for a field the run did not show).
 */
interface Kept {
  prev: Record<string, unknown>;
}

/** Tallyfy: `PUT /organizations/{org_id}/runs/{run_id}`, a partial update (reference 003). */
export const tallyfyUpdateRun: OperationModule<Op> = {
  type: 'tallyfy.updateRun',
  schema,
  targetIdField: 'runId',
  targetKey: (t) => String(t.runId),

  async apply(ctx) {
    const { operation, verify } = ctx;
    // The previous values come from one read before the write: the update's answer shows the
    // run only after it. `undo: false` saves that call; an update of `prerun` keeps nothing.
    const keeps = ctx.captureUndo && operation.changes.prerun === undefined;
    const before = keeps ? await readRun(ctx) : undefined;
    // An earlier run's update landed though its answer was lost: the run holds every change.
    if (before && ctx.earlier !== undefined && changedFields(operation.changes).every((k) => isDeepStrictEqual(before[k], operation.changes[k as keyof Changes]))) {
      return { outcome: 'upgraded', reason: 'UPGRADED', undo: ctx.earlier };
    }
    const kept: Kept | undefined = before && { prev: Object.fromEntries(changedFields(operation.changes).map((k) => [k, before[k] ?? null])) };
    if (kept) await ctx.keep(kept);
    const data = await putRun(ctx, operation.changes, 'tallyfy update run');
    if (verify) {
      // The answer is the run after the update (reference 003), so it is the read-back: no
      // extra call. `prerun` is left out: the answer renders kick-off fields per field type, not
      // as the values sent, so comparing it would fail runs that did change.
      const differ = changedFields(operation.changes).filter((k) => !isDeepStrictEqual(data[k], operation.changes[k as keyof Changes]));
      if (differ.length > 0) {
        throw new UpshiftError('VERIFY_MISMATCH', `tallyfy update accepted, but the run it answered does not hold ${differ.join(', ')}`);
      }
    }
    return { outcome: 'upgraded', reason: 'UPGRADED', ...(kept ? { undo: kept } : {}) };
  },

  /**
   * PUTs the previous values back when the run still holds every value the update wrote. A
   * field the run did not show before is written as its empty value (`""`, `[]`); an owner
   * cannot be emptied and stays. An update of `prerun` is `NOT_REVERTIBLE`: Tallyfy shows
   * kick-off fields rendered per field type, not as values an update takes back.
   */
  async revert(ctx, raw) {
    if (ctx.operation.changes.prerun !== undefined) {
      throw new UpshiftError('NOT_REVERTIBLE', 'the update changed kick-off fields (prerun), which Tallyfy reads back rendered, not as values an update can write back');
    }
    const { prev } = keptObject(raw, ctx.operation.type) as unknown as Kept;
    const fields = Object.keys(prev);
    // What the revert writes: a field the run did not show before, as its empty value.
    const back = Object.fromEntries(
      fields.flatMap((k) => (prev[k] !== null ? [[k, prev[k]]] : k in EMPTY ? [[k, EMPTY[k]]] : [])),
    );
    if (Object.keys(back).length === 0) throw new UpshiftError('NOT_REVERTIBLE', `the run showed none of ${fields.join(', ')} before the update, and an update cannot empty them`);
    const run = await readRun(ctx);
    const same = (a: unknown, b: unknown) => isDeepStrictEqual(a ?? null, b ?? null);
    // Back already: an earlier revert of it landed (its answer lost), or someone put it back.
    if (Object.keys(back).every((k) => same(run[k], back[k]))) return BACK_ALREADY;
    if (!fields.every((k) => same(run[k], ctx.operation.changes[k as keyof Changes]))) return CHANGED_SINCE_UPGRADE;
    await putRun(ctx, back, 'tallyfy update run (undo)');
    return REVERTED;
  },
};

export const tallyfy: PlatformAdapter<'tallyfy'> = {
  name: 'tallyfy',
  secretHeaders: ['authorization'],
  operations: [tallyfyUpdateRun],
};
