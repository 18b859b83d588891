import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { errorFromResponse, isSuccess, parseJson } from '../http.js';
import { isDeepStrictEqual } from 'node:util';
import { isPlainObject, nameString } from './common.js';
import type { ApplyContext, ApplyResult, OperationModule } from './types.js';
import { BACK_ALREADY, CHANGED_SINCE_UPGRADE, keptObject, REVERTED } from './undo.js';

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
  input: Record<string, unknown>;
}

/** What an upgrade keeps to take itself back: the version it moved from, and the input when it replaced some. */
interface Kept {
  version: number;
  input?: Record<string, unknown>;
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
  return {
    status: body.status,
    workflowName: body.workflowName,
    workflowVersion: body.workflowVersion,
    input: isPlainObject(body.input) ? body.input : {},
  };
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
    const { operation } = ctx;
    const exec = await readExecution(ctx);
    const before = resultFromState(operation, exec);
    // On the version already after an earlier run's upgrade, whose answer was lost: it landed.
    if (before?.reason === 'ALREADY_CURRENT' && ctx.earlier !== undefined) return { outcome: 'upgraded', reason: 'UPGRADED', undo: ctx.earlier };
    if (before) return before;

    const kept: Kept = { version: exec.workflowVersion, ...(operation.workflowInput === undefined ? {} : { input: exec.input }) };
    await ctx.keep(kept);
    const res = await upgrade(ctx, {
      name: operation.name,
      version: operation.version,
      ...(operation.taskOutput === undefined ? {} : { taskOutput: operation.taskOutput }),
      ...(operation.workflowInput === undefined ? {} : { workflowInput: operation.workflowInput }),
    });
    if (isSuccess(res.status)) {
      if (ctx.verify) await verifyUpgrade(ctx);
      return { outcome: 'upgraded', reason: 'UPGRADED', ...(ctx.captureUndo ? { undo: kept } : {}) };
    }

    // The execution may have ended, or been upgraded (by us, on an attempt whose answer was
    // lost), between the read and the upgrade: a second read tells which.
    if (res.status === 400 || res.status === 409) {
      const after = resultFromState(operation, await readExecution(ctx));
      if (after) return after;
    }
    throw errorFromResponse(res, 'conductor upgrade');
  },

  /**
   * Upgrades the execution back to the version it ran before, with the input it had when the
   * upgrade replaced some. Left alone when it ended, or no longer runs the version (or input)
   * the upgrade set. Task outputs the upgrade gave skipped tasks stay: they belong to tasks of
   * the version being left. On a platform that merges `workflowInput` into the input (as the
   * sandbox does), input keys the upgrade added remain; the keys it overwrote are restored.
   */
  async revert(ctx, raw) {
    const kept = keptObject(raw, ctx.operation.type) as unknown as Kept;
    const { operation } = ctx;
    // The whole input as the upgrade left it, whether the platform merged `workflowInput` into
    // the input or replaced it: anything else is someone's change since, which sending the kept
    // input back would overwrite.
    const inputAsUpgraded = (input: Record<string, unknown>): boolean =>
      kept.input === undefined || operation.workflowInput === undefined
        ? true
        : isDeepStrictEqual(input, { ...kept.input, ...operation.workflowInput }) || isDeepStrictEqual(input, operation.workflowInput);
    const state = (exec: Execution): ApplyResult | null => {
      if (exec.workflowName !== operation.name) return CHANGED_SINCE_UPGRADE;
      if (ENDED.has(exec.status)) return { outcome: 'skipped', reason: 'NOT_RUNNING' };
      if (exec.workflowVersion === kept.version && holds(exec.input, kept.input)) return BACK_ALREADY;
      if (exec.workflowVersion !== operation.version || !inputAsUpgraded(exec.input)) return CHANGED_SINCE_UPGRADE;
      return null;
    };
    const now = state(await readExecution(ctx));
    if (now) return now;
    const res = await upgrade(ctx, { name: operation.name, version: kept.version, ...(kept.input === undefined ? {} : { workflowInput: kept.input }) });
    if (isSuccess(res.status)) return REVERTED;
    if (res.status === 400 || res.status === 409) {
      const after = state(await readExecution(ctx));
      if (after) return after;
    }
    throw errorFromResponse(res, 'conductor upgrade (undo)');
  },
};

function upgrade({ send, credential, target }: ApplyContext<Op>, json: Record<string, unknown>) {
  return send({
    method: 'POST',
    segments: ['api', 'workflow', String(target.workflowId), 'upgrade'],
    headers: { 'x-authorization': credential(), accept: '*/*' },
    json,
  });
}

/** Whether `input` holds every value of `wanted` (nothing wanted: it does). */
function holds(input: Record<string, unknown>, wanted: Record<string, unknown> | undefined): boolean {
  return wanted === undefined || Object.entries(wanted).every(([k, v]) => isDeepStrictEqual(input[k], v));
}
