import { isDeepStrictEqual } from 'node:util';
import jsonpatch from 'fast-json-patch';
import { z } from 'zod';
import { UpshiftError } from '../errors.js';

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
