import { createHash } from 'node:crypto';
import jsonpatch from 'fast-json-patch';
import { z } from 'zod';
import { DEFAULTS } from '../config.js';
import { UpshiftError } from '../errors.js';
import { isPlainObject } from './common.js';
import type { JsonPatch } from './patch.js';
import type { ApplyResult, OperationBase, OperationModule, Target } from './types.js';

/**
 * Undo campaigns (README, "Undo"). An upgrade keeps, in its outcome record, what its operation's
 * `revert` needs (`ApplyResult.undo`); `upshift undo` makes a campaign of operation
 * `undo:<type>` whose targets are the original's upgraded ones, each carrying that data in the
 * field `@undo`. The undo operation below is derived from the original one, so every platform
 * that declares `revert` can be taken back with nothing more.
 */

export const UNDO_PREFIX = 'undo:';

/**
 * The target field an undo campaign's targets carry their kept data in. A user's target field of
 * this name is overwritten: undo campaigns are made by Upshift only, never from a spec.
 */
export const UNDO_FIELD = '@undo';

/** The operation an `undo:<type>` operation takes back (the type itself for any other). */
export function baseOperationType(type: string): string {
  return type.startsWith(UNDO_PREFIX) ? type.slice(UNDO_PREFIX.length) : type;
}

export function isUndoType(type: string): boolean {
  return type.startsWith(UNDO_PREFIX);
}

/**
 * What an undo target carries in `@undo`, as JSON: `{"k": kept}` the data its upgrade kept;
 * `{"x": 1}` its record had expired; `{"n": why}` its upgrade kept nothing (`why` empty when the
 * operation kept nothing for this target: its `revert` is asked with nothing and says why).
 */
export type UndoCarry = { readonly k: unknown } | { readonly x: 1 } | { readonly n: string };

export function encodeCarry(carry: UndoCarry): string {
  return JSON.stringify(carry);
}

function decodeCarry(value: string | number | undefined): UndoCarry {
  if (typeof value !== 'string') return { n: '' };
  const parsed: unknown = JSON.parse(value);
  if (isPlainObject(parsed) && ('k' in parsed || parsed.x === 1 || typeof parsed.n === 'string')) return parsed as UndoCarry;
  throw new UpshiftError('UNEXPECTED_RESPONSE', `malformed ${UNDO_FIELD} field`);
}

/** The undo operation as stored in an undo campaign's spec: the original operation, retyped, and the campaign it takes back. */
export type UndoOperation = OperationBase & { readonly undoOf: string } & Record<string, unknown>;

/** The `undo:<type>` operation of an operation module (registered with it: operations/index.ts). */
export function undoModuleFor(op: OperationModule): OperationModule<UndoOperation> {
  const type = `${UNDO_PREFIX}${op.type}`;
  return {
    type,
    // Never parsed from a user's spec (undo campaigns are made by `undoCampaign`), so the shape
    // is checked loosely: the original operation's own fields were checked when it was enqueued.
    schema: z.looseObject({ type: z.literal(type), undoOf: z.string().min(1) }) as unknown as z.ZodType<UndoOperation>,
    targetIdField: op.targetIdField,
    targetFields: { ...op.targetFields, [UNDO_FIELD]: z.string().max(DEFAULTS.maxUndoCarryBytes).optional() },
    ...(op.targetVersionField === undefined ? {} : { targetVersionField: op.targetVersionField }),
    targetKey: (t) => op.targetKey(t),
    writeReason: 'REVERTED',

    async apply(ctx): Promise<ApplyResult> {
      const { [UNDO_FIELD]: carried, ...target } = ctx.target;
      const carry = decodeCarry(carried);
      if ('x' in carry) {
        throw new UpshiftError('UNDO_DATA_EXPIRED', `the record of this target in campaign ${ctx.operation.undoOf} had expired; nothing is left to revert it from`);
      }
      if ('n' in carry && carry.n !== '') throw new UpshiftError('NOT_REVERTIBLE', carry.n);
      if (op.revert === undefined) throw new UpshiftError('NOT_REVERTIBLE', `${op.type} declares no way to revert an upgrade`);
      const { undoOf: _undoOf, ...operation } = ctx.operation;
      return op.revert(
        { ...ctx, operation: { ...operation, type: op.type }, target: target as Target, captureUndo: false },
        'k' in carry ? carry.k : undefined,
      );
    },
  };
}

/**
 * A JSON.stringify replacer that puts each object's keys in sorted order (objects already so, as
 * most are, pass untouched), so equal documents give equal text whatever their key order.
 */
function sortedKeys(_key: string, value: unknown): unknown {
  if (!isPlainObject(value)) return value;
  const keys = Object.keys(value);
  if (keys.every((k, i) => i === 0 || keys[i - 1]! <= k)) return value;
  return Object.fromEntries(keys.sort().map((k) => [k, value[k]]));
}

/**
 * A short digest of a document (top-level fields in `ignore` left out): what an upgrade keeps to
 * tell, at undo, whether the target still holds what it wrote (or is back as it was), without
 * keeping the whole document: 22 base64url characters (132 bits) of SHA-256.
 */
export function digest(doc: unknown, ignore: readonly string[] = []): string {
  let d = doc;
  if (isPlainObject(doc) && ignore.length > 0) {
    const copy = { ...doc };
    for (const k of ignore) delete copy[k];
    d = copy;
  }
  return createHash('sha256').update(JSON.stringify(d, sortedKeys) ?? 'null').digest('base64url').slice(0, 22);
}

/** The RFC 6902 patch that turns `written` back into `before`: what an upgrade keeps instead of the document. */
export function inversePatch(written: unknown, before: unknown): JsonPatch {
  return jsonpatch.compare(written as object, before as object) as JsonPatch;
}

/**
 * Whether a document whose digest is `now` is what an earlier run wrote, by what it kept
 * (`ApplyContext.earlier`, with a `wrote` digest): that write landed though its answer was lost.
 */
export function wroteEarlier(earlier: unknown, now: string): boolean {
  return isPlainObject(earlier) && earlier.wrote === now;
}

/** The kept data an operation's `revert` was handed, checked to be the object it kept. */
export function keptObject(kept: unknown, type: string): Record<string, unknown> {
  if (!isPlainObject(kept)) throw new UpshiftError('NOT_REVERTIBLE', `the data kept to revert this ${type} upgrade is missing`);
  return kept;
}

export const REVERTED: ApplyResult = { outcome: 'upgraded', reason: 'REVERTED' };
export const CHANGED_SINCE_UPGRADE: ApplyResult = { outcome: 'skipped', reason: 'CHANGED_SINCE_UPGRADE' };
export const BACK_ALREADY: ApplyResult = { outcome: 'skipped', reason: 'ALREADY_CURRENT' };
