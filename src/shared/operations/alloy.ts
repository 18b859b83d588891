import { z } from 'zod';
import { errorFromResponse, isSuccess, parseJson } from '../http.js';
import { UpshiftError } from '../errors.js';
import { isPlainObject, nameString } from './common.js';
import type { OperationModule, PlatformAdapter } from './types.js';

const schema = z.strictObject({
  type: z.literal('alloy.upgradeWorkflow'),
  workflowId: nameString,
  apiVersion: z.string().min(1).default('2025-09'),
});

/** Alloy Embedded: `PUT /workflows/{workflowId}/upgrade?userId=` (reference 000). */
export const alloyUpgradeWorkflow: OperationModule<z.infer<typeof schema>> = {
  type: 'alloy.upgradeWorkflow',
  schema,
  targetIdField: 'userId',
  targetKey: (t) => String(t.userId),

  async apply({ operation, target, send, credential }) {
    const res = await send({
      method: 'PUT',
      segments: ['workflows', operation.workflowId, 'upgrade'],
      query: { userId: String(target.userId) },
      headers: {
        authorization: `bearer ${credential()}`,
        'x-api-version': operation.apiVersion,
        accept: 'application/json',
      },
    });
    // Alloy documents 400 as "configurable fields changed: reinstall", not as a bad request.
    if (!isSuccess(res.status)) throw errorFromResponse(res, 'alloy upgrade', { 400: 'REINSTALL_REQUIRED' });
    const body = parseJson(res, 'alloy upgrade');
    if (!isPlainObject(body) || (body.upgraded !== undefined && typeof body.upgraded !== 'boolean')) {
      throw new UpshiftError('UNEXPECTED_RESPONSE', `alloy upgrade: 200 with an unexpected body: ${res.text.slice(0, 200)}`);
    }
    // `upgraded` defaults to true in the document; only an explicit false means "nothing done".
    // `verify` adds nothing here: Alloy documents no read of a user's installed workflow
    // version (reference 000), so `upgraded` in this answer is the only evidence there is.
    return body.upgraded === false
      ? { outcome: 'skipped', reason: 'NOT_UPGRADED' }
      : { outcome: 'upgraded', reason: 'UPGRADED' };
  },

  /** Nothing is kept: the API moves a user to the latest version only, never to an earlier one. */
  async revert() {
    throw new UpshiftError('NOT_REVERTIBLE', "Alloy's upgrade API only moves a user to the latest version of a workflow (reference 000); there is no call that moves one back");
  },
};

export const alloy: PlatformAdapter<'alloy'> = {
  name: 'alloy',
  secretHeaders: ['authorization'],
  operations: [alloyUpgradeWorkflow],
};
