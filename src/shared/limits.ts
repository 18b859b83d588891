import { z } from 'zod';
import type { Target } from './operations/index.js';
import { hasControlChars } from './text.js';

/**
 * Concurrency and rate limits per key value, modelled on Conductor's
 * `rateLimitConfig {rateLimitKey, concurrentExecLimit}`: a key is a literal or a template over
 * the target, the operation, the campaign id and the base URL, resolved once per target at
 * enqueue. Limits are global: every campaign whose key resolves to the same value shares them.
 */

export const MAX_LIMITS = 4;

const PLACEHOLDER = /\$\{([^}]*)\}/g;
const SOURCES = /^(target|operation)\.([A-Za-z0-9_-]+)$|^campaign\.id$|^connection\.baseUrl$/;

export const limitSchema = z.strictObject({
  key: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'must not contain control characters')
    .superRefine((key, ctx) => {
      for (const m of key.matchAll(PLACEHOLDER)) {
        if (!SOURCES.test(m[1]!)) {
          ctx.addIssue({
            code: 'custom',
            message: `unknown placeholder \${${m[1]}}: use \${target.<field>}, \${operation.<field>}, \${campaign.id} or \${connection.baseUrl}`,
          });
        }
      }
      if (key.replace(PLACEHOLDER, '').includes('${')) ctx.addIssue({ code: 'custom', message: 'unclosed "${"' });
    }),
  concurrency: z.number().int().min(1).max(100_000).optional(),
  rate: z
    .strictObject({ max: z.number().int().min(1).max(1_000_000), perMs: z.number().int().min(1).max(86_400_000) })
    .optional(),
}).refine((l) => l.concurrency !== undefined || l.rate !== undefined, 'a limit needs "concurrency", "rate" or both');

export type LimitSpec = z.infer<typeof limitSchema>;

/** What the scheduler stores per group: `[key value, concurrency (0 = none), rate max (0 = none), rate window ms]`. */
export type ResolvedLimit = readonly [string, number, number, number];

export interface LimitContext {
  readonly campaignId: string;
  readonly baseUrl: string;
  readonly operation: Readonly<Record<string, unknown>>;
}

/** Thrown by `resolveLimits` when a target lacks what a key needs; the producer adds the line. */
export class LimitKeyError extends Error {
  constructor(
    readonly limitIndex: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Compiles the campaign's limits into one function from a target to its resolved limits, so
 * the per-target work at enqueue is string concatenation only.
 */
export function compileLimits(limits: readonly LimitSpec[], ctx: LimitContext): (target: Target) => ResolvedLimit[] {
  const compiled = limits.map((limit, index) => {
    const parts: ((t: Target) => string)[] = [];
    let last = 0;
    for (const m of limit.key.matchAll(PLACEHOLDER)) {
      const literal = limit.key.slice(last, m.index);
      if (literal) parts.push(() => literal);
      last = m.index + m[0].length;
      const [source, field] = m[1]!.split('.') as [string, string];
      const name = m[0];
      if (source === 'target') {
        parts.push((t) => {
          const v = t[field];
          if (v === undefined || v === '') throw new LimitKeyError(index, `${name} is missing or empty on this target`);
          const value = String(v);
          // Key values are shown on the dashboard and named in metric labels: text only.
          if (hasControlChars(value)) throw new LimitKeyError(index, `${name} must not contain control characters`);
          return value;
        });
      } else {
        const v =
          source === 'operation' ? ctx.operation[field] : source === 'campaign' ? ctx.campaignId : ctx.baseUrl;
        const value = typeof v === 'string' || typeof v === 'number' ? String(v) : '';
        parts.push(() => {
          if (value === '') throw new LimitKeyError(index, `${name} is missing or empty`);
          if (hasControlChars(value)) throw new LimitKeyError(index, `${name} must not contain control characters`);
          return value;
        });
      }
    }
    const tail = limit.key.slice(last);
    if (tail) parts.push(() => tail);
    return { parts, concurrency: limit.concurrency ?? 0, rate: limit.rate };
  });
  return (target) =>
    compiled.map(({ parts, concurrency, rate }): ResolvedLimit => {
      let key = '';
      for (const p of parts) key += p(target);
      return [key, concurrency, rate?.max ?? 0, rate?.perMs ?? 0];
    });
}

/**
 * A connection is a base URL plus the credential used on it: a Retry-After from the platform
 * pauses exactly the calls that share both. The credential is named, never its value.
 */
export function connectionId(baseUrl: string, credentialRef: string): string {
  return `${baseUrl}#${credentialRef}`;
}
