import { z } from 'zod';
import { alloy } from './alloy.js';
import { conductor } from './conductor.js';
import { nected } from './nected.js';
import { tallyfy } from './tallyfy.js';
import type { OperationBase, OperationModule, PlatformAdapter } from './types.js';
import { undoModuleFor, UNDO_PREFIX } from './undo.js';

export type { ApplyContext, ApplyResult, OperationBase, OperationModule, PlatformAdapter, Target } from './types.js';

/** The platform table: one row per platform (docs/ARCHITECTURE.md, "How to add a platform"). */
export const PLATFORMS = [alloy, conductor, tallyfy, nected] as const;

/** The built-in platforms' names. A platform registered at runtime has a name outside it. */
export type PlatformName = (typeof PLATFORMS)[number]['name'];
/** The built-in operation types. */
export type OperationType = (typeof PLATFORMS)[number]['operations'][number]['type'];

const registered: PlatformAdapter[] = [];
/** Every registered operation, in platform order; kept in place so importers see registrations. */
export const OPERATIONS: readonly OperationModule[] = [];
const byType = new Map<string, OperationModule>();
/** Set once something has built a view of the registry that a later registration would miss. */
let sealedBy: string | undefined;

/**
 * Adds a platform: its operations become valid in specs and connection registries, and its
 * secret headers are redacted from logs and scrubbed from stored errors. The rows of
 * `PLATFORMS` come in through here too. Call it at startup: once a spec schema, connection
 * registry or logger has been built from the registry, a registration would be missed, so it
 * throws instead.
 */
export function registerPlatform(adapter: PlatformAdapter): void {
  if (sealedBy !== undefined) {
    throw new Error(`registerPlatform(${adapter.name}): too late, the platform table was already read by ${sealedBy}`);
  }
  if (registered.some((p) => p.name === adapter.name)) throw new Error(`platform ${adapter.name} is already registered`);
  for (const op of adapter.operations) {
    if (byType.has(op.type)) throw new Error(`operation type ${op.type} is already registered`);
    if (op.type.startsWith(UNDO_PREFIX)) throw new Error(`operation type ${op.type}: "${UNDO_PREFIX}" is reserved for undo campaigns`);
  }
  for (const h of adapter.secretHeaders) {
    if (h !== h.toLowerCase()) throw new Error(`secret header ${h} of ${adapter.name} must be lower-case`);
  }
  registered.push(adapter);
  for (const op of adapter.operations) {
    byType.set(op.type, op);
    // An undo campaign's operation; not in OPERATIONS, so no spec can ask for it.
    byType.set(`${UNDO_PREFIX}${op.type}`, undoModuleFor(op));
    (OPERATIONS as OperationModule[]).push(op);
  }
}

for (const p of PLATFORMS) registerPlatform(p);

/**
 * Marks the registry as read by `reader` (a schema, a logger's redaction): later registrations
 * throw rather than being silently left out of it.
 */
export function sealPlatforms(reader: string): void {
  sealedBy ??= reader;
}

export function platforms(): readonly PlatformAdapter[] {
  return registered;
}

export function operationFor(type: string): OperationModule {
  const op = byType.get(type);
  if (!op) throw new Error(`unknown operation type ${type}`);
  return op;
}

/** Every registered platform's credential headers, lower-case, each once. */
export function secretHeaders(): readonly string[] {
  return [...new Set(registered.flatMap((p) => p.secretHeaders))];
}

/** Every registered operation type (seals the registry: the caller builds a schema from it). */
export function operationTypes(reader: string): [string, ...string[]] {
  sealPlatforms(reader);
  const [first, ...rest] = OPERATIONS.map((o) => o.type);
  if (first === undefined) throw new Error('no operation is registered');
  return [first, ...rest];
}

/**
 * An operation module's schema as the discriminated union takes it: an object with a literal
 * `type`. Strict at run time; typed with the loose config so the parsed spec keeps the type of
 * the operation's other fields (unknown here, each module's own after `op.schema.parse`).
 */
type OperationSchema = z.ZodObject<{ type: z.ZodLiteral<string> }, z.core.$loose>;

function isOperationSchema(schema: z.ZodType): schema is OperationSchema {
  return schema instanceof z.ZodObject && schema.shape.type instanceof z.ZodLiteral;
}

/**
 * The `operation` field of a spec: the registered operations' schemas, told apart by `type`
 * (seals the registry). `OperationModule.schema`'s type cannot say that each is an object with
 * a literal `type`, which the discriminated union needs, so it is checked here.
 */
export function operationSchema(reader: string): z.ZodType<z.output<OperationSchema>> {
  sealPlatforms(reader);
  const [first, ...rest] = OPERATIONS.map((o) => o.schema);
  if (first === undefined) throw new Error('no operation is registered');
  if (!isOperationSchema(first) || !rest.every(isOperationSchema)) {
    throw new Error('every operation schema must be an object with a literal "type"');
  }
  return z.discriminatedUnion('type', [first, ...rest]);
}
