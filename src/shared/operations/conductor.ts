import { conductorUpdateDefinition } from './conductor-definition.js';
import { conductorUpgradeExecution } from './conductor-execution.js';
import type { PlatformAdapter } from './types.js';

/** Conductor (Orkes): every call authenticates with `X-Authorization: <key>`. */
export const conductor: PlatformAdapter<'conductor'> = {
  name: 'conductor',
  secretHeaders: ['x-authorization'],
  operations: [conductorUpgradeExecution, conductorUpdateDefinition],
};
