import { alloyUpgradeWorkflow } from './alloy.js';
import { conductorUpdateDefinition } from './conductor-definition.js';
import { conductorUpgradeExecution } from './conductor-execution.js';
import { nectedUpdateWorkflow } from './nected.js';
import { tallyfyUpdateRun } from './tallyfy.js';
import type { OperationModule } from './types.js';

export type { ApplyContext, ApplyResult, OperationModule, Target } from './types.js';

/** The operation table: one row per operation type. */
export const OPERATIONS: readonly OperationModule<any>[] = [
  alloyUpgradeWorkflow,
  conductorUpgradeExecution,
  conductorUpdateDefinition,
  tallyfyUpdateRun,
  nectedUpdateWorkflow,
];

const byType = new Map(OPERATIONS.map((o) => [o.type, o]));

export function operationFor(type: string): OperationModule<any> {
  const op = byType.get(type);
  if (!op) throw new Error(`unknown operation type ${type}`);
  return op;
}
