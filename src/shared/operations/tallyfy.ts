import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson } from '../http.js';
import { isPlainObject, nameString } from './common.js';
import type { OperationModule, PlatformAdapter } from './types.js';

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

/** Tallyfy: `PUT /organizations/{org_id}/runs/{run_id}`, a partial update (reference 003). */
export const tallyfyUpdateRun: OperationModule<z.infer<typeof schema>> = {
  type: 'tallyfy.updateRun',
  schema,
  targetIdField: 'runId',
  targetKey: (t) => String(t.runId),

  async apply({ operation, target, send, credential, verify }) {
    const res = await send({
      method: 'PUT',
      segments: ['organizations', operation.orgId, 'runs', String(target.runId)],
      headers: {
        authorization: `Bearer ${credential()}`,
        accept: 'application/json',
        'x-tallyfy-client': 'APIClient',
      },
      json: operation.changes,
    });
    if (!isSuccess(res.status)) throw errorFromResponse(res, 'tallyfy update run');
    const body = parseJson(res, 'tallyfy update run');
    // "200 with an error body" is not success: the document promises the run under `data`.
    if (!isPlainObject(body) || !isPlainObject(body.data)) {
      throw new UpshiftError('UNEXPECTED_RESPONSE', `tallyfy update run: 200 without data: ${res.text.slice(0, 200)}`);
    }
    if (verify) {
      // The answer is the run after the update (reference 003), so it is the read-back: no
      // extra call. `prerun` is left out: the answer renders kick-off fields per field type, not
      // as the values sent, so comparing it would fail runs that did change.
      const data = body.data;
      const differ = Object.entries(operation.changes).filter(
        ([k, v]) => v !== undefined && k !== 'prerun' && !isDeepStrictEqual(data[k], v),
      );
      if (differ.length > 0) {
        throw new UpshiftError(
          'VERIFY_MISMATCH',
          `tallyfy update accepted, but the run it answered does not hold ${differ.map(([k]) => k).join(', ')}`,
        );
      }
    }
    return { outcome: 'upgraded', reason: 'UPGRADED' };
  },
};

export const tallyfy: PlatformAdapter<'tallyfy'> = {
  name: 'tallyfy',
  secretHeaders: ['authorization'],
  operations: [tallyfyUpdateRun],
};
