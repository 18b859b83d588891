import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson } from '../http.js';
import { isPlainObject, nameString } from './common.js';
import { applyJsonPatch, patchHolds, patchSchema, type JsonPatch } from './patch.js';
import type { ApplyContext, OperationModule, Target } from './types.js';
import { BACK_ALREADY, CHANGED_SINCE_UPGRADE, digest, inversePatch, keptObject, REVERTED, wroteEarlier } from './undo.js';

const schema = z.strictObject({
  type: z.literal('conductor.updateDefinition'),
  patch: patchSchema,
  newVersion: z.boolean().default(false),
  ownerEmail: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address'),
});

type Op = z.infer<typeof schema>;

function version(t: Target): number | undefined {
  return t.version === undefined ? undefined : Number(t.version);
}

/** Fields Conductor sets on every write itself: never what the patch wrote. */
const SERVER_MANAGED = ['createTime', 'updateTime', 'createdBy', 'updatedBy'];

async function readDefinition({ send, credential, target }: ApplyContext<Op>, v: number | undefined): Promise<Record<string, unknown>> {
  const got = await send({
    method: 'GET',
    segments: ['api', 'metadata', 'workflow', String(target.name)],
    query: v === undefined ? {} : { version: String(v) },
    headers: { 'x-authorization': credential(), accept: 'application/json' },
  });
  if (!isSuccess(got.status)) throw errorFromResponse(got, 'conductor get definition');
  const definition = parseJson(got, 'conductor get definition');
  if (!isPlainObject(definition) || typeof definition.name !== 'string') {
    throw new UpshiftError('UNEXPECTED_RESPONSE', `conductor get definition: unexpected body: ${got.text.slice(0, 200)}`);
  }
  return definition;
}

/**
 * Conductor (Orkes) definition update (reference 002): read the definition, apply the RFC 6902
 * patch, write the whole definition back with `PUT /api/metadata/workflow`.
 */
export const conductorUpdateDefinition: OperationModule<Op> = {
  type: 'conductor.updateDefinition',
  schema,
  targetIdField: 'name',
  targetFields: { version: z.number().int().min(0).optional() },
  targetVersionField: 'version',
  // One name may be targeted at several versions in one campaign.
  targetKey: (t) => (version(t) === undefined ? String(t.name) : `${String(t.name)}@${version(t)}`),

  async apply(ctx) {
    const { operation, target } = ctx;
    const v = version(target);
    const definition = await readDefinition(ctx, v);
    // An earlier run's write landed (its answer was lost): the patch, which need not apply twice
    // (a `remove`), is not applied again.
    if (wroteEarlier(ctx.earlier, digest(definition, SERVER_MANAGED))) return { outcome: 'upgraded', reason: 'UPGRADED', undo: ctx.earlier };

    const { result, changed } = applyJsonPatch(definition, operation.patch);
    if (!changed) return { outcome: 'skipped', reason: 'ALREADY_CURRENT' };

    const written = { ...result, ownerEmail: operation.ownerEmail };
    // With newVersion there is nothing to revert to in place (see `revert`): nothing is kept.
    const undo = ctx.captureUndo && !operation.newVersion ? keep(definition, written) : undefined;
    if (undo !== undefined) await ctx.keep(undo);
    const put = await putDefinition(ctx, written, operation.newVersion);
    if (!isSuccess(put.status)) throw errorFromResponse(put, 'conductor update definition');
    if (ctx.verify) {
      // With newVersion the write is stored as the highest version, which a read without a
      // version returns; its `version` is the server's, not the one the body carried.
      const read = await readDefinition(ctx, operation.newVersion ? undefined : v);
      const ignore = operation.newVersion ? [...SERVER_MANAGED, 'version'] : SERVER_MANAGED;
      if (!patchHolds(written, read, operation.patch, ignore)) {
        throw new UpshiftError('VERIFY_MISMATCH', `conductor definition update accepted, but the definition read back does not hold the patch: ${JSON.stringify(read).slice(0, 200)}`);
      }
    }
    return { outcome: 'upgraded', reason: 'UPGRADED', ...(undo === undefined ? {} : { undo }) };
  },

  /**
   * Writes the definition back as it was read before the upgrade (the kept inverse patch applied
   * to what is there now), when it still holds what the upgrade wrote. With `newVersion` the
   * upgrade created a version: Conductor's update document (reference 002) gives no call that
   * removes one, and writing the old content as yet another version would not restore the
   * definition's versions as they were, so it is `NOT_REVERTIBLE`.
   */
  async revert(ctx, raw) {
    const { operation, target } = ctx;
    if (operation.newVersion) {
      throw new UpshiftError('NOT_REVERTIBLE', 'the upgrade created a new definition version (newVersion: true); Conductor documents no call that removes a version');
    }
    const kept = keptObject(raw, operation.type) as unknown as Kept;
    const current = await readDefinition(ctx, version(target));
    const now = digest(current, SERVER_MANAGED);
    if (now === kept.before) return BACK_ALREADY;
    if (now !== kept.wrote) return CHANGED_SINCE_UPGRADE;
    const { result } = applyJsonPatch(current, kept.inverse);
    const put = await putDefinition(ctx, result, false);
    if (!isSuccess(put.status)) throw errorFromResponse(put, 'conductor update definition (undo)');
    return REVERTED;
  },
};

/** What an update keeps to take itself back: the inverse patch, and digests of what it wrote and of what it read. */
interface Kept {
  inverse: JsonPatch;
  wrote: string;
  before: string;
}

function keep(definition: Record<string, unknown>, written: Record<string, unknown>): Kept {
  return { inverse: inversePatch(written, definition), wrote: digest(written, SERVER_MANAGED), before: digest(definition, SERVER_MANAGED) };
}

function putDefinition({ send, credential }: ApplyContext<Op>, json: Record<string, unknown>, newVersion: boolean) {
  return send({
    method: 'PUT',
    segments: ['api', 'metadata', 'workflow'],
    query: { overwrite: 'true', newVersion: String(newVersion) },
    headers: { 'x-authorization': credential(), accept: '*/*' },
    json,
  });
}
