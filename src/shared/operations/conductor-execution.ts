import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson } from '../http.js';
import { isPlainObject, nameString } from './common.js';
import type { ApplyContext, ApplyResult, OperationModule } from './types.js';

const schema = z.strictObject({
  type: z.literal('conductor.upgradeExecution'),
  name: nameString,
  version: z.number().int().min(1),
  taskOutput: z.record(z.string(), z.unknown()).optional(),
  workflowInput: z.record(z.string(), z.unknown()).optional(),
});
type Op = z.infer<typeof schema>;

/** Statuses after which an execution cannot move again. RUNNING and PAUSED can be upgraded. */
const ENDED = new Set(['COMPLETED', 'FAILED', 'TIMED_OUT', 'TERMINATED']);

interface Execution {
  status: string;
  workflowName: string;
  workflowVersion: number;
}

async function readExecution({ send, credential, target }: ApplyContext<Op>): Promise<Execution> {
  const res = await send({
    method: 'GET',
    segments: ['api', 'workflow', String(target.workflowId)],
    query: { includeTasks: 'false' },
    headers: { 'x-authorization': credential(), accept: 'application/json' },
  });
  if (!isSuccess(res.status)) throw errorFromResponse(res, 'conductor get execution');
  const body = parseJson(res, 'conductor get execution');
  if (
    !isPlainObject(body) ||
    typeof body.status !== 'string' ||
    typeof body.workflowName !== 'string' ||
    typeof body.workflowVersion !== 'number'
  ) {
    throw new UpshiftError('UNEXPECTED_RESPONSE', `conductor get execution: unexpected body: ${res.text.slice(0, 200)}`);
  }
  return { status: body.status, workflowName: body.workflowName, workflowVersion: body.workflowVersion };
}

/** What the execution's current state says about the upgrade, or null when it should be sent. */
function resultFromState(op: Op, exec: Execution): ApplyResult | null {
  if (exec.workflowName !== op.name) {
    throw new UpshiftError(
      'WRONG_WORKFLOW',
      `execution belongs to workflow "${exec.workflowName}", not "${op.name}"`,
    );
  }
  if (ENDED.has(exec.status)) return { outcome: 'skipped', reason: 'NOT_RUNNING' };
  if (exec.workflowVersion === op.version) return { outcome: 'skipped', reason: 'ALREADY_CURRENT' };
  return null;
}

/**
 * The read-back of `verify`. The version alone decides, whatever the status: an execution that
 * ended since the upgrade keeps the version it ran with, so an ended one still shows the change.
 */
async function verifyUpgrade(ctx: ApplyContext<Op>): Promise<void> {
  const exec = await readExecution(ctx);
  const { name, version } = ctx.operation;
  if (exec.workflowName !== name || exec.workflowVersion !== version) {
    throw new UpshiftError(
      'VERIFY_MISMATCH',
      `conductor upgrade accepted, but the execution reads back as "${exec.workflowName}" version ${exec.workflowVersion}, not "${name}" version ${version}`,
    );
  }
}

/**
 * Conductor (Orkes): `POST /api/workflow/{id}/upgrade` (reference 001), after reading the
 * execution, because the document leaves ended executions and same-version upgrades open.
 */
export const conductorUpgradeExecution: OperationModule<Op> = {
  type: 'conductor.upgradeExecution',
  schema,
  targetIdField: 'workflowId',
  targetKey: (t) => String(t.workflowId),

  async apply(ctx) {
    const { operation, send, credential, target } = ctx;
    const before = resultFromState(operation, await readExecution(ctx));
    if (before) return before;

    const res = await send({
      method: 'POST',
      segments: ['api', 'workflow', String(target.workflowId), 'upgrade'],
      headers: { 'x-authorization': credential(), accept: '*/*' },
      json: {
        name: operation.name,
        version: operation.version,
        ...(operation.taskOutput === undefined ? {} : { taskOutput: operation.taskOutput }),
        ...(operation.workflowInput === undefined ? {} : { workflowInput: operation.workflowInput }),
      },
    });
    if (isSuccess(res.status)) {
      if (ctx.verify) await verifyUpgrade(ctx);
      return { outcome: 'upgraded', reason: 'UPGRADED' };
    }

    // The execution may have ended, or been upgraded (by us, on an attempt whose answer was
    // lost), between the read and the upgrade: a second read tells which.
    if (res.status === 400 || res.status === 409) {
      const after = resultFromState(operation, await readExecution(ctx));
      if (after) return after;
    }
    throw errorFromResponse(res, 'conductor upgrade');
  },
};
