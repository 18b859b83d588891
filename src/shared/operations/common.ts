import { z } from 'zod';

/** A non-empty single-line string for names and ids inside an operation. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * False for text with a lone UTF-16 surrogate: it cannot be sent as itself (URL encoding throws
 * or turns it into U+FFFD, which names another target), nor stored in Redis as itself.
 */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

export const nameString = z
  .string()
  .min(1, 'must not be empty')
  .max(512, 'must be at most 512 characters')
  .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'must not contain control characters')
  .refine(isWellFormed, 'must be well-formed Unicode (no lone surrogates)');

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
