import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson } from '../http.js';
import { isPlainObject, nameString } from './common.js';
import { applyJsonPatch, patchSchema } from './patch.js';
import type { OperationModule, Target } from './types.js';

const schema = z.strictObject({
  type: z.literal('conductor.updateDefinition'),
  patch: patchSchema,
  newVersion: z.boolean().default(false),
  ownerEmail: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must be an email address'),
});

function version(t: Target): number | undefined {
  return t.version === undefined ? undefined : Number(t.version);
}

/**
 * Conductor (Orkes) definition update (reference 002): read the definition, apply the RFC 6902
 * patch, write the whole definition back with `PUT /api/metadata/workflow`.
 */
export const conductorUpdateDefinition: OperationModule<z.infer<typeof schema>> = {
  type: 'conductor.updateDefinition',
  schema,
  targetIdField: 'name',
  targetFields: { version: z.number().int().min(0).optional() },
  targetVersionField: 'version',
  // One name may be targeted at several versions in one campaign.
  targetKey: (t) => (version(t) === undefined ? String(t.name) : `${String(t.name)}@${version(t)}`),

  async apply({ operation, target, send, credential }) {
    const v = version(target);
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

    const { result, changed } = applyJsonPatch(definition, operation.patch);
    if (!changed) return { outcome: 'skipped', reason: 'ALREADY_CURRENT' };

    const put = await send({
      method: 'PUT',
      segments: ['api', 'metadata', 'workflow'],
      query: { overwrite: 'true', newVersion: String(operation.newVersion) },
      headers: { 'x-authorization': credential(), accept: '*/*' },
      json: { ...result, ownerEmail: operation.ownerEmail },
    });
    if (!isSuccess(put.status)) throw errorFromResponse(put, 'conductor update definition');
    return { outcome: 'upgraded', reason: 'UPGRADED' };
  },
};
