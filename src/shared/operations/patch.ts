import { isDeepStrictEqual } from 'node:util';
import jsonpatch from 'fast-json-patch';
import { z } from 'zod';
import { UpshiftError } from '../errors.js';
import { isPlainObject } from './common.js';

const pointer = z.string().regex(/^(\/.*)?$/, 'must be a JSON pointer ("" or starting with "/")');
// `undefined` is no JSON value: it would pass here from a library caller and vanish from the
// stored spec, leaving an operation without its value.
const jsonValue = z.unknown().refine((v) => v !== undefined, 'is required (a JSON value)');

/** RFC 6902 operations, checked at enqueue so a malformed patch never reaches a worker. */
export const patchSchema = z
  .array(
    z.discriminatedUnion('op', [
      z.strictObject({ op: z.literal('add'), path: pointer, value: jsonValue }),
      z.strictObject({ op: z.literal('remove'), path: pointer }),
      z.strictObject({ op: z.literal('replace'), path: pointer, value: jsonValue }),
      z.strictObject({ op: z.literal('move'), path: pointer, from: pointer }),
      z.strictObject({ op: z.literal('copy'), path: pointer, from: pointer }),
      z.strictObject({ op: z.literal('test'), path: pointer, value: jsonValue }),
    ]),
  )
  .min(1, 'needs at least one operation');

export type JsonPatch = z.infer<typeof patchSchema>;

/**
 * Applies `patch` to a copy of `doc`. A failing `test` is `PRECONDITION_FAILED`; any other
 * failure (a path that does not exist) is `PATCH_NOT_APPLICABLE`. `changed` is false when the
 * result deep-equals the input, which the adapters report as `ALREADY_CURRENT`.
 */
export function applyJsonPatch<T>(doc: T, patch: JsonPatch): { result: T; changed: boolean } {
  let result: T;
  try {
    result = jsonpatch.applyPatch(
      jsonpatch.deepClone(doc),
      patch as jsonpatch.Operation[],
      true,
      true,
    ).newDocument as T;
  } catch (err) {
    const e = err as { name?: string; message?: string };
    if (e.name === 'TEST_OPERATION_FAILED') {
      throw new UpshiftError('PRECONDITION_FAILED', `patch test failed: ${firstLine(e.message)}`, { cause: err });
    }
    throw new UpshiftError('PATCH_NOT_APPLICABLE', `patch cannot be applied: ${firstLine(e.message)}`, { cause: err });
  }
  return { result, changed: !isDeepStrictEqual(doc, result) };
}

function firstLine(s: string | undefined): string {
  return (s ?? '').split('\n')[0] ?? '';
}

const NOTHING = Symbol('nothing');

/** The value at a JSON pointer in `doc`, or NOTHING when the path does not exist. */
function valueAt(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  let cur = doc;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9][0-9]*)$/.test(key) || Number(key) >= cur.length) return NOTHING;
      cur = cur[Number(key)];
    } else if (isPlainObject(cur) && Object.prototype.hasOwnProperty.call(cur, key)) {
      cur = cur[key];
    } else {
      return NOTHING;
    }
  }
  return cur;
}

function without(doc: unknown, keys: readonly string[]): unknown {
  if (!isPlainObject(doc)) return doc;
  const copy = { ...doc };
  for (const k of keys) delete copy[k];
  return copy;
}

/**
 * Whether `read` (the document read back after the write) holds what `written` (the patched
 * document that was sent) holds at every path the patch wrote or removed. Only those paths are
 * compared, so fields the server manages elsewhere (timestamps, checksums) cannot fail it;
 * `ignore` names top-level fields the server rewrites on every write, left out even when a
 * path covers the whole document. `test` operations wrote nothing and are not re-run: a test of
 * the old value would fail on the new document by design. An append (`/-`) compares the array.
 */
export function patchHolds(written: unknown, read: unknown, patch: JsonPatch, ignore: readonly string[] = []): boolean {
  const w = without(written, ignore);
  const r = without(read, ignore);
  for (const op of patch) {
    if (op.op === 'test') continue;
    for (const path of op.op === 'move' ? [op.path, op.from] : [op.path]) {
      const p = path.endsWith('/-') ? path.slice(0, -2) : path;
      if (!isDeepStrictEqual(valueAt(w, p), valueAt(r, p))) return false;
    }
  }
  return true;
}
