import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson } from '../http.js';
import { isPlainObject, nameString } from './common.js';
import { applyJsonPatch, patchHolds, patchSchema } from './patch.js';
import type { ApplyContext, OperationModule, Target } from './types.js';

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
    const { operation, target, send, credential } = ctx;
    const v = version(target);
    const definition = await readDefinition(ctx, v);

    const { result, changed } = applyJsonPatch(definition, operation.patch);
    if (!changed) return { outcome: 'skipped', reason: 'ALREADY_CURRENT' };

    const written = { ...result, ownerEmail: operation.ownerEmail };
    const put = await send({
      method: 'PUT',
      segments: ['api', 'metadata', 'workflow'],
      query: { overwrite: 'true', newVersion: String(operation.newVersion) },
      headers: { 'x-authorization': credential(), accept: '*/*' },
      json: written,
    });
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
    return { outcome: 'upgraded', reason: 'UPGRADED' };
  },
};
