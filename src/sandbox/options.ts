import { z } from 'zod';
import type { CommonConfig } from './common-config.js';
import { SANDBOX_KEYS, sandboxPlatforms, type PlatformOptions, type SandboxPlatformName } from './platforms.js';

export { SANDBOX_KEYS };
export type { CommonConfig };

/** The API key each platform accepts, by platform name. */
export type SandboxKeys = { [K in SandboxPlatformName]: string } & { [platform: string]: string };

/** The options every sandbox has; each platform may add its own (`SandboxPlatform.config`). */
export interface CommonOptions extends CommonConfig {
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** Interface to bind; loopback unless a container needs it reachable (`0.0.0.0`). */
  host: string;
  /** PRNG seed: the same seed and the same request sequence give the same faults. */
  seed: number;
  /** Every registered platform's key; the ones not given are its `defaultKey`. */
  keys: SandboxKeys;
  /** Keep every platform request in `Sandbox.received`. */
  record: boolean;
}

/** The common options and the table's platforms' own (`conflictRate`, `conflictStatus` of Nected). */
export type SandboxOptions = CommonOptions & PlatformOptions;

/** What can change on a running sandbox, programmatically or via `POST /__sandbox/config`. */
export type SandboxConfig = Partial<CommonConfig & PlatformOptions>;

const DEFAULT_OPTIONS: Readonly<CommonOptions> = Object.freeze({
  port: 0,
  host: '127.0.0.1',
  latencyMs: 0,
  resetRate: 0,
  slowRate: 0,
  slowMs: 30_000,
  dropWriteRate: 0,
  failRate: 0,
  throttleRate: 0,
  retryAfterS: 1,
  seed: 1,
  keys: { ...SANDBOX_KEYS },
  record: false,
  limitKeyPattern: null,
  capacity: null,
});

const rate = z.number().min(0).max(1);

/**
 * Compiles a `limitKeyPattern`; throws a readable error when it is not a valid JavaScript regular
 * expression or has no capture group (without one there is no limit key to extract).
 */
export function compileLimitKeyPattern(pattern: string): RegExp {
  let re: RegExp;
  try {
    re = new RegExp(pattern);
  } catch (err) {
    throw new Error(`limitKeyPattern is not a valid regular expression: ${(err as Error).message}`);
  }
  // An added empty alternative always matches, and leaves one (undefined) slot per capture group.
  const groups = new RegExp(`${pattern}|`).exec('')!.length - 1;
  if (groups < 1) throw new Error(`limitKeyPattern needs a capture group around the limit key: ${pattern}`);
  return re;
}

const limitKeyPattern = z
  .string()
  .min(1)
  .nullable()
  .superRefine((pattern, ctx) => {
    if (pattern === null || pattern === '') return; // '' is already refused by min(1)
    try {
      compileLimitKeyPattern(pattern);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

const commonConfigShape = {
  latencyMs: z.number().int().min(0),
  resetRate: rate,
  slowRate: rate,
  slowMs: z.number().int().min(0).max(3_600_000),
  dropWriteRate: rate,
  failRate: rate,
  throttleRate: rate,
  retryAfterS: z.number().int().min(0),
  limitKeyPattern,
  capacity: z.number().int().min(1).nullable(),
};

/** The common configuration shape and every registered platform's own options. */
function configShape(): z.ZodRawShape {
  return Object.assign({}, commonConfigShape, ...sandboxPlatforms().map((p) => p.configShape));
}

/** The names of the run-time options: the common ones and every registered platform's own. */
export function configKeys(): string[] {
  return Object.keys(configShape());
}

/** What is wrong with `value` for the run-time option `key`, or null when it is valid. */
export function configIssue(key: string, value: unknown): string | null {
  const schema = configShape()[key];
  if (schema === undefined) return `no sandbox option "${key}"`;
  const parsed = z.safeParse(schema, value);
  return parsed.success ? null : (parsed.error.issues[0]?.message ?? 'invalid value');
}

/** Strict: an unknown option is a typo the caller should hear about. */
const configSchema = () => z.strictObject(configShape()).partial();

/** Built per call: `keys` names the platforms registered by then. */
function optionsSchema() {
  const names = sandboxPlatforms().map((p) => p.name);
  return z
    .strictObject({
      ...configShape(),
      port: z.number().int().min(0).max(65535),
      host: z.string().min(1),
      seed: z.number().int(),
      keys: z.strictObject(Object.fromEntries(names.map((n) => [n, z.string().optional()]))),
      record: z.boolean(),
    })
    .partial();
}

/** Merges caller options over the defaults; throws a readable error on a bad value. */
export function resolveOptions(opts: Partial<SandboxOptions> = {}): SandboxOptions {
  const parsed = optionsSchema().safeParse(opts);
  if (!parsed.success) throw new Error(`invalid sandbox options: ${z.prettifyError(parsed.error)}`);
  const { keys, ...rest } = parsed.data;
  // The registry holds the table's rows (SANDBOX_KEYS) and the platforms registered since.
  const registeredKeys = Object.fromEntries(sandboxPlatforms().map((p) => [p.name, p.defaultKey]));
  const platformDefaults = Object.assign({}, ...sandboxPlatforms().map((p) => p.configDefaults)) as PlatformOptions;
  return {
    ...DEFAULT_OPTIONS,
    ...platformDefaults,
    ...definedOnly(rest),
    keys: { ...SANDBOX_KEYS, ...registeredKeys, ...definedOnly(keys ?? {}) },
  };
}

/** The part of resolved options that can change while the sandbox runs. */
export function configOf(options: SandboxOptions): Required<SandboxConfig> {
  // Every key of the configuration schema is set in resolved options (defaults included).
  return Object.fromEntries(Object.keys(configShape()).map((k) => [k, options[k as keyof SandboxOptions]])) as Required<SandboxConfig>;
}

/** The run-time configuration a sandbox starts with: what a test puts back to undo its `configure`. */
export function defaultConfig(): Required<SandboxConfig> {
  return configOf(resolveOptions());
}

/** Validates a runtime configuration change; throws a readable error on a bad value. */
export function parseConfig(input: unknown): SandboxConfig {
  const parsed = configSchema().safeParse(input);
  if (!parsed.success) throw new Error(`invalid sandbox config: ${z.prettifyError(parsed.error)}`);
  return definedOnly(parsed.data);
}

/** Drops keys whose value is `undefined`, so `{ latencyMs: undefined }` does not erase a default. */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
