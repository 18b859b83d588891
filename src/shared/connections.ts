import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULTS } from './config.js';
import { InputError } from './errors.js';
import { concurrencyCeiling, limitSchema, MAX_LIMITS, type Concurrency, type LimitSpec } from './limits.js';
import { operationTypes } from './operations/index.js';
import { baseOperationType } from './operations/undo.js';

/**
 * The connections registry: the operator's list of which credential may be sent to which
 * origin (docs/SECURITY.md). A campaign names one of these; it can never choose a base URL or
 * an environment variable of its own. Read once at start (`UPSHIFT_CONNECTIONS`), validated
 * and frozen; the producer checks a spec against it at enqueue, every worker again at call
 * time (a job in Redis is input too), and the egress guard at the socket.
 */

export const CONNECTION_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Upper case, as environment variable names are by convention: a pasted secret rarely is. */
const CREDENTIAL_REF = /^[A-Z_][A-Z0-9_]{0,127}$/;

/**
 * A value that looks like a credential rather than the name of a variable holding one: an AWS
 * access key id, or a long run of letters and digits with no `_` word break.
 */
function looksLikeSecret(ref: string): boolean {
  return /^(AKIA|ASIA)[A-Z0-9]{16}$/.test(ref) || (ref.length >= 20 && !ref.includes('_') && /\d/.test(ref));
}

export const baseUrlSchema = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.search === '' && u.hash === '' && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}, 'must be an http(s) URL without query, fragment or credentials');

const entrySchema = z.strictObject({
  baseUrl: baseUrlSchema,
  credentialRef: z
    .string()
    .regex(CREDENTIAL_REF, 'must be the NAME of an environment variable (A-Z, 0-9, _), never the credential itself')
    .refine((s) => !looksLikeSecret(s), 'looks like a credential value: put the NAME of the environment variable that holds it'),
  // Lazy: built from the platform table on first use, after every platform has been registered.
  operations: z.array(z.lazy(() => z.enum(operationTypes('the connection registry schema')))).min(1).optional(),
  limits: z.array(limitSchema).max(MAX_LIMITS, `at most ${MAX_LIMITS} limits per connection`).optional(),
  privateNetwork: z.boolean().default(false),
});

const secretRefSchema = z
  .string()
  .regex(CREDENTIAL_REF, 'must be the NAME of an environment variable (A-Z, 0-9, _), never the secret itself')
  .refine((s) => !looksLikeSecret(s), 'looks like a secret value: put the NAME of the environment variable that holds it');

/**
 * A webhook receiver (README, "Notifications"): where signed campaign events go and which
 * variable holds the signing secret. The URL is kept whole (a receiver's path is its own), only
 * its origin normalised; query and fragment are refused as for a connection.
 */
const notifierSchema = z.strictObject({
  url: baseUrlSchema.transform((s) => normaliseBaseUrl(s)),
  secretRef: secretRefSchema,
  privateNetwork: z.boolean().default(false),
});

const registrySchema = z.strictObject({
  connections: z.record(z.string().regex(CONNECTION_NAME, 'connection names are letters, digits, _ . - (at most 64)'), entrySchema),
  notifiers: z.record(z.string().regex(CONNECTION_NAME, 'notifier names are letters, digits, _ . - (at most 64)'), notifierSchema).default({}),
});

export interface ConnectionEntry {
  readonly baseUrl: string;
  readonly credentialRef: string;
  /** Operation types allowed on it; undefined: all. */
  readonly operations?: readonly string[];
  /** Ceilings every campaign on this connection obeys. */
  readonly limits?: readonly LimitSpec[];
  /** Whether calls may go to loopback, private, link-local and other non-public addresses. */
  readonly privateNetwork: boolean;
}

export interface NotifierEntry {
  /** Where deliveries are POSTed (origin normalised, no trailing slash). */
  readonly url: string;
  /** The environment variable, on the workers, holding the HMAC signing secret. */
  readonly secretRef: string;
  /** Whether deliveries may go to loopback, private, link-local and other non-public addresses. */
  readonly privateNetwork: boolean;
}

export interface ConnectionRegistry {
  readonly connections: Readonly<Record<string, ConnectionEntry>>;
  /** Webhook receivers a spec's `notify` may name; empty when the registry lists none. */
  readonly notifiers: Readonly<Record<string, NotifierEntry>>;
}

/** A spec's connection once resolved against the registry: what is stored with the campaign. */
export interface ResolvedConnection {
  readonly name: string;
  readonly baseUrl: string;
  readonly credentialRef: string;
  readonly timeoutMs: number;
  readonly privateNetwork: boolean;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Validates a parsed registry (the library's `connections` option); errors name the connection and field. */
export function parseConnections(raw: unknown, source = 'connections'): ConnectionRegistry {
  const parsed = registrySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
    const kind = issue.path[0] === 'notifiers' ? 'notifier' : 'connection';
    const name = (issue.path[0] === 'connections' || issue.path[0] === 'notifiers') && issue.path.length > 1 ? ` (${kind} "${String(issue.path[1])}")` : '';
    throw new InputError(source, `${issue.message}${name}`, { field: field || 'connections', code: 'CONNECTIONS_INVALID' });
  }
  return deepFreeze(parsed.data as ConnectionRegistry);
}

export const CONNECTIONS_HOWTO =
  'set UPSHIFT_CONNECTIONS to a JSON file of the connections this deployment may use, e.g. ' +
  '{"connections":{"alloy-prod":{"baseUrl":"https://production.runalloy.com","credentialRef":"ALLOY_API_KEY"}}} (docs/SECURITY.md)';

/** Reads `UPSHIFT_CONNECTIONS` once; a command that enqueues, serves or works refuses to start without it. */
export function loadConnections(env: NodeJS.ProcessEnv = process.env): ConnectionRegistry {
  const path = env.UPSHIFT_CONNECTIONS;
  if (!path) throw new InputError('environment', `no connections registry: ${CONNECTIONS_HOWTO}`, { field: 'UPSHIFT_CONNECTIONS', code: 'CONNECTIONS_INVALID' });
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError('environment', `cannot read UPSHIFT_CONNECTIONS (${path}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      field: 'UPSHIFT_CONNECTIONS',
      code: 'CONNECTIONS_INVALID',
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(path, `not valid JSON: ${(err as Error).message}`, { code: 'CONNECTIONS_INVALID' });
  }
  return parseConnections(raw, path);
}

/** Origin plus path prefix, no trailing slash: `HTTPS://Host:443/x/` and `https://host/x` are one endpoint. */
export function normaliseBaseUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** What a spec may say under `connection` (schema in spec.ts): a registered name or a copy of an entry. */
export type ConnectionInput =
  | string
  | { readonly name: string; readonly timeoutMs?: number }
  | { readonly baseUrl: string; readonly credentialRef: string; readonly timeoutMs?: number };

function notRegistered(source: string, message: string): InputError {
  return new InputError(source, message, { field: 'connection', code: 'CONNECTION_NOT_REGISTERED' });
}

/**
 * The registered connection a spec names, or `InputError` `CONNECTION_NOT_REGISTERED`
 * (field `connection`). The explicit form is accepted only when it equals an entry: the same
 * normalised origin and path prefix and the same `credentialRef`.
 */
export function resolveConnection(
  input: ConnectionInput,
  registry: ConnectionRegistry,
  operationType: string,
  source = 'spec',
): ResolvedConnection {
  const entries = registry.connections;
  let name: string | undefined;
  if (typeof input === 'string' || 'name' in input) {
    const wanted = typeof input === 'string' ? input : input.name;
    if (!Object.hasOwn(entries, wanted)) throw notRegistered(source, `connection "${wanted}" is not registered (UPSHIFT_CONNECTIONS)`);
    name = wanted;
  } else {
    const base = normaliseBaseUrl(input.baseUrl);
    name = Object.keys(entries).find((n) => normaliseBaseUrl(entries[n]!.baseUrl) === base && entries[n]!.credentialRef === input.credentialRef);
    if (name === undefined) {
      // Name neither the URL nor the variable back: the answer must not help probe the registry.
      throw notRegistered(source, 'this baseUrl and credentialRef are not a registered connection; name one from UPSHIFT_CONNECTIONS');
    }
  }
  const entry = entries[name]!;
  // An undo campaign's `undo:<type>` is allowed where the operation it takes back is.
  if (entry.operations !== undefined && !entry.operations.includes(baseOperationType(operationType))) {
    throw notRegistered(source, `connection "${name}" is not registered for ${operationType}`);
  }
  const timeoutMs = typeof input === 'string' ? undefined : input.timeoutMs;
  return Object.freeze({
    name,
    baseUrl: entry.baseUrl,
    credentialRef: entry.credentialRef,
    timeoutMs: timeoutMs ?? DEFAULTS.callTimeoutMs,
    privateNetwork: entry.privateNetwork,
  });
}

/**
 * A worker's check of a stored campaign's connection against its own registry: the entry to
 * use, or why not. The stored copy is never trusted for the URL, variable or network rule.
 */
export function registeredEntry(
  stored: { readonly name?: string; readonly baseUrl: string; readonly credentialRef: string },
  registry: ConnectionRegistry,
  operationType: string,
): { readonly entry: ConnectionEntry } | { readonly error: string } {
  const name = stored.name;
  if (name === undefined || !Object.hasOwn(registry.connections, name)) {
    return { error: `connection ${name === undefined ? '(unnamed)' : `"${name}"`} is not registered on this worker` };
  }
  const entry = registry.connections[name]!;
  let same = false;
  try {
    same = normaliseBaseUrl(stored.baseUrl) === normaliseBaseUrl(entry.baseUrl) && stored.credentialRef === entry.credentialRef;
  } catch {
    same = false;
  }
  if (!same) return { error: `connection "${name}" differs from the one registered on this worker` };
  if (entry.operations !== undefined && !entry.operations.includes(baseOperationType(operationType))) {
    return { error: `connection "${name}" is not registered for ${operationType} on this worker` };
  }
  return { entry };
}

/** A limit as stored with a campaign: `shared` when it is the registry's (not scoped to the connection). */
export type EffectiveLimit = LimitSpec & { readonly shared?: true };

/**
 * The campaign's limits under its connection's ceilings: a campaign limit on the same key as a
 * registry limit may lower it, never raise it (clipped, with a warning); registry limits the
 * campaign does not mention apply as declared.
 */
export function applyCeilings(
  limits: readonly LimitSpec[],
  entry: Pick<ConnectionEntry, 'limits'>,
): { limits: EffectiveLimit[]; warnings: string[] } {
  const ceilings = entry.limits ?? [];
  const warnings: string[] = [];
  const out: EffectiveLimit[] = [];
  const used = new Set<number>();
  limits.forEach((limit, i) => {
    const c = ceilings.findIndex((x) => x.key === limit.key);
    if (c < 0) {
      out.push(limit);
      return;
    }
    used.add(c);
    const ceiling = ceilings[c]!;
    let concurrency = limit.concurrency ?? ceiling.concurrency;
    if (ceiling.concurrency !== undefined && concurrency !== undefined) {
      const most = concurrencyCeiling(ceiling.concurrency);
      if (concurrencyCeiling(concurrency) > most) {
        warnings.push(`limits[${i}].concurrency ${describeConcurrency(concurrency)} clipped to the connection's ceiling ${most}`);
        concurrency = clipConcurrency(concurrency, most);
      }
    }
    let rate = limit.rate ?? ceiling.rate;
    if (ceiling.rate !== undefined && rate !== undefined && rate.max / rate.perMs > ceiling.rate.max / ceiling.rate.perMs) {
      warnings.push(`limits[${i}].rate ${rate.max}/${rate.perMs} ms clipped to the connection's ceiling ${ceiling.rate.max}/${ceiling.rate.perMs} ms`);
      rate = ceiling.rate;
    }
    out.push({ key: limit.key, ...(concurrency === undefined ? {} : { concurrency }), ...(rate === undefined ? {} : { rate }), shared: true });
  });
  ceilings.forEach((ceiling, c) => {
    if (!used.has(c)) out.push({ ...ceiling, shared: true });
  });
  return { limits: out, warnings };
}

/** An adaptive concurrency no longer reaches above `most`: its bounds (and start) are clipped with it. */
function clipConcurrency(c: Concurrency, most: number): Concurrency {
  if (typeof c === 'number') return Math.min(c, most);
  const { min, max, initial } = c.adaptive;
  return { adaptive: { min: Math.min(min, most), max: Math.min(max, most), ...(initial === undefined ? {} : { initial: Math.min(initial, most) }) } };
}

function describeConcurrency(c: Concurrency): string {
  return typeof c === 'number' ? String(c) : `adaptive max ${c.adaptive.max}`;
}

/** The values of every registered credential set in `env`: what scrubbing removes from logged error text. */
export function credentialValues(registry: ConnectionRegistry, env: NodeJS.ProcessEnv = process.env): string[] {
  const out = new Set<string>();
  for (const entry of Object.values(registry.connections)) {
    const v = env[entry.credentialRef];
    if (v) out.add(v);
  }
  for (const entry of Object.values(registry.notifiers ?? {})) {
    const v = env[entry.secretRef];
    if (v) out.add(v);
  }
  return [...out];
}

/** What a campaign can ask to be told (README, "Notifications"), in the order a campaign meets them. */
export const NOTIFY_EVENTS = ['step-completed', 'gated', 'paused', 'completed', 'cancelled', 'undo-started'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** One entry of a spec's `notify`: a registered notifier and the events it is sent. */
export interface NotifyRequest {
  readonly to: string;
  readonly events: readonly NotifyEvent[];
}

/**
 * Every notifier a spec's `notify` names must be in the registry, or `InputError`
 * `NOTIFIER_NOT_REGISTERED` naming `notify[i].to`: a campaign can never choose a URL or a secret.
 */
export function checkNotifiers(notify: readonly NotifyRequest[], registry: ConnectionRegistry, source = 'spec'): void {
  notify.forEach((n, i) => {
    if (!Object.hasOwn(registry.notifiers ?? {}, n.to)) {
      throw new InputError(source, `notifier "${n.to}" is not registered (UPSHIFT_CONNECTIONS "notifiers")`, {
        field: `notify[${i}].to`,
        code: 'NOTIFIER_NOT_REGISTERED',
      });
    }
  });
}
