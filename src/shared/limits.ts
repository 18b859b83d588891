import { z } from 'zod';
import type { Target } from './operations/index.js';
import { hasControlChars } from './text.js';

/**
 * Concurrency and rate limits per key value, modelled on Conductor's
 * `rateLimitConfig {rateLimitKey, concurrentExecLimit}`: a key is a literal or a template over
 * the target, the operation, the campaign id and the base URL, resolved once per target at
 * enqueue. Limits are global across workers, and a key value is shared by the campaigns on the
 * same connection (a campaign's own limits) or by every campaign whose connection the registry
 * declares it on (the registry's limits): see `scopedKeyValue`.
 */

export const MAX_LIMITS = 4;

const PLACEHOLDER = /\$\{([^}]*)\}/g;
const SOURCES = /^(target|operation)\.([A-Za-z0-9_-]+)$|^campaign\.id$|^connection\.baseUrl$/;

const MAX_CONCURRENCY = 100_000;
const fixedConcurrency = z.number().int().min(1).max(MAX_CONCURRENCY);

/**
 * A concurrency the scheduler finds by itself between `min` and `max`, starting from `initial`
 * (`min` when not given): up while rounds of calls stay near the no-load latency, down on
 * 429, 503, timeouts and a sustained latency rise (includes/adaptive.lua).
 */
const adaptiveConcurrency = z.strictObject({
  adaptive: z
    .strictObject({ min: fixedConcurrency, max: fixedConcurrency, initial: fixedConcurrency.optional() })
    .refine((a) => a.min <= a.max, '"min" must not be above "max"')
    .refine((a) => a.initial === undefined || (a.initial >= a.min && a.initial <= a.max), '"initial" must be between "min" and "max"'),
});

export type AdaptiveConcurrency = z.infer<typeof adaptiveConcurrency>['adaptive'];
export type Concurrency = number | { readonly adaptive: AdaptiveConcurrency };

export function isAdaptive(c: Concurrency | undefined): c is { readonly adaptive: AdaptiveConcurrency } {
  return c !== undefined && typeof c !== 'number';
}

/** The most calls a concurrency lets run at once: the figure, or an adaptive one's `max`. */
export function concurrencyCeiling(c: Concurrency): number {
  return typeof c === 'number' ? c : c.adaptive.max;
}

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
  concurrency: z.union([fixedConcurrency, adaptiveConcurrency]).optional(),
  rate: z
    .strictObject({ max: z.number().int().min(1).max(1_000_000), perMs: z.number().int().min(1).max(86_400_000) })
    .optional(),
}).refine((l) => l.concurrency !== undefined || l.rate !== undefined, 'a limit needs "concurrency", "rate" or both');

export type LimitSpec = z.infer<typeof limitSchema>;

/**
 * What the scheduler stores per group: `[key value, concurrency (0 = none), rate max (0 = none),
 * rate window ms, scope, adaptive?]`. Scope 1: the value is the connection's own (a campaign's limit), and
 * the key's capacity is the smallest figure among the live campaigns using it; 0: the registry's
 * (the figures are the registry's ceilings). Groups stored without it are read as 0. An adaptive
 * concurrency stores its `max` as the concurrency (a hard bound, read like any figure) and
 * `[min, max, initial]` sixth: the figure dispatch applies is the key's adaptive state in Redis.
 */
export type ResolvedLimit =
  | readonly [string, number, number, number, 0 | 1]
  | readonly [string, number, number, number, 0 | 1, readonly [number, number, number]];

export interface LimitContext {
  readonly campaignId: string;
  readonly baseUrl: string;
  /** The registry name of the campaign's connection: its own key values are scoped to it. */
  readonly connectionName: string;
  readonly operation: Readonly<Record<string, unknown>>;
}

/**
 * Key values are scoped so that two connections never share a slot unless the operator says so.
 * A campaign's own limit resolves to `<connection name>/<value>` (`alloy-prod/tenant-acme`): a
 * connection name is letters, digits, `_ . -` only, so the scope is everything before the first
 * `/` and no value can move it. A registry limit (`shared`) resolves to its value as is, so the
 * same key declared on two connections is one key; a value that would read as scoped (letters,
 * digits, `_ . -` and then a `/`, or a leading `/`) gets a leading `/` (`eu/acme` is stored as
 * `/eu/acme`), so the two kinds never meet whatever a target's fields hold.
 */
export const KEY_SCOPE_SEPARATOR = '/';
const SCOPED_SHAPE = /^[A-Za-z0-9_.-]*\//;

/** The key value of a campaign's own limit: `<connection name>/<value>`. */
export function scopedKeyValue(connectionName: string, value: string): string {
  return `${connectionName}${KEY_SCOPE_SEPARATOR}${value}`;
}

/** The key value of a registry limit: the value, with a leading `/` when it would read as scoped. */
export function sharedKeyValue(value: string): string {
  return SCOPED_SHAPE.test(value) ? `${KEY_SCOPE_SEPARATOR}${value}` : value;
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
export function compileLimits(
  limits: readonly (LimitSpec & { readonly shared?: boolean })[],
  ctx: LimitContext,
): (target: Target) => ResolvedLimit[] {
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
    const c = limit.concurrency;
    const adaptive = c === undefined || typeof c === 'number' ? undefined : ([c.adaptive.min, c.adaptive.max, c.adaptive.initial ?? c.adaptive.min] as const);
    return { parts, concurrency: c === undefined ? 0 : concurrencyCeiling(c), rate: limit.rate, shared: limit.shared === true, adaptive };
  });
  return (target) =>
    compiled.map(({ parts, concurrency, rate, shared, adaptive }): ResolvedLimit => {
      let value = '';
      for (const p of parts) value += p(target);
      const key = shared ? sharedKeyValue(value) : scopedKeyValue(ctx.connectionName, value);
      const fixed = [key, concurrency, rate?.max ?? 0, rate?.perMs ?? 0, shared ? 0 : 1] as const;
      return adaptive === undefined ? fixed : [...fixed, adaptive];
    });
}

/**
 * A connection is a base URL plus the credential used on it: a Retry-After from the platform
 * pauses exactly the calls that share both. The credential is named, never its value.
 */
export function connectionId(baseUrl: string, credentialRef: string): string {
  return `${baseUrl}#${credentialRef}`;
}
