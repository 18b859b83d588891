import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { FaultInjector } from './faults.js';
import type { CommonConfig } from './common-config.js';

/** What a handler decides; the server adds latency and writes it. `body: undefined` = empty body. */
export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One platform request, already read and split. */
export interface PlatformRequest {
  method: string;
  /** Path parameters, each segment percent-decoded on its own (an encoded '/' stays inside). */
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** Raw body as UTF-8 text ('' when none). */
  body: string;
}

/** What a platform's handlers may touch besides the request (`C`: the platform's own options). */
export interface HandlerEnv<S, C extends object = object> {
  /** This platform's own state (its `SandboxPlatform.createState()`). */
  state: S;
  /** The API key this platform accepts (the `keys` option, or its `defaultKey`). */
  key: string;
  /** The sandbox's current configuration: the common options and this platform's own. */
  config: Readonly<Required<CommonConfig> & C>;
  faults: FaultInjector;
  /** Counts one successful state change for a target key. */
  applied(targetKey: string): void;
  /** Counts one simulated concurrent edit; returns how many there have been. */
  conflictInjected(): number;
}

export interface Operation<S, C extends object = object> {
  handle(req: PlatformRequest, env: HandlerEnv<S, C>): Reply;
  /** The target key this request addresses, for `requestsByTarget`; undefined when not knowable. */
  target?(req: PlatformRequest): string | undefined;
}

export interface Route<S, C extends object = object> {
  /** Path segments after the leading '/'; ':name' captures one decoded segment. */
  pattern: readonly string[];
  methods: Readonly<Record<string, Operation<S, C>>>;
}

/**
 * A platform's own options: set beside the common ones (`startSandbox({...})`, `POST
 * /__sandbox/config`, changeable while running), each checked by its schema.
 */
export interface PlatformConfig<C extends object> {
  readonly shape: { readonly [K in keyof C]: z.ZodType<C[K]> };
  readonly defaults: C;
}

/**
 * One platform of the sandbox: its routes, its state and fixtures, its key. A new platform is
 * one module exporting one of these and one row in `SANDBOX_PLATFORMS` (./platforms.ts), or a
 * `registerSandboxPlatform()` call before `startSandbox()`. `S` is its state (one per sandbox),
 * `F` its section of the fixtures (`load()`/`state()` under `name`), `C` its own options.
 */
export interface SandboxPlatform<Name extends string, S, F, C extends object = object> {
  readonly name: Name;
  /** The API key it accepts unless the `keys` option says otherwise (a test value, no secret). */
  readonly defaultKey: string;
  /** Strict schema of its fixtures section: an unknown field is a typo the caller should hear about. */
  readonly fixtures: z.ZodType<F>;
  createState(): S;
  /** Adds or replaces records; `fixtures` were parsed by `fixtures` and are the caller's no more. */
  load(state: S, fixtures: F): void;
  clear(state: S): void;
  /** Its state in fixture shape (loading it into an empty sandbox gives the same state). */
  snapshot(state: S): F;
  /**
   * Takes a copy of the state and returns what puts it back exactly (used for `dropWriteRate`).
   * Optional: without it, `clear` then `load` of a `snapshot` copy, which is exact unless
   * loading adds something the snapshot leaves out (Conductor's create and update times).
   */
  checkpoint?(state: S): () => void;
  /** Each platform words its errors differently: the body of an error answer with this status. */
  error(status: number, message: string): unknown;
  /** Options of its own, if it has any; their names must not clash with another platform's. */
  readonly config?: PlatformConfig<C>;
  /** Its paths must not collide with another platform's: all share one port. */
  readonly routes: readonly Route<S, C>[];
}

/**
 * A key made of several ids. JSON of an array, because ids may contain any character
 * (a separator like ':' or '/' could make two different pairs collide).
 */
export function compositeKey(...parts: string[]): string {
  return JSON.stringify(parts);
}

/* Helpers ------------------------------------------------------------------------------------ */

/** A header as one string (Node joins repeated custom headers with ', ', which then fails exact checks, as it should). */
export function header(req: PlatformRequest, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * True when `Authorization` is `<scheme> <key>` with the scheme matched case-insensitively
 * (RFC 9110: auth schemes are case-insensitive) and the key matched exactly.
 */
export function hasAuthScheme(req: PlatformRequest, scheme: string, key: string): boolean {
  const m = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +(.*)$/.exec(header(req, 'authorization') ?? '');
  return m !== null && m[1]!.toLowerCase() === scheme.toLowerCase() && m[2] === key;
}

/** Media type without parameters, lower-cased: 'application/json; charset=utf-8' -> 'application/json'. */
function mediaType(value: string): string {
  return (value.split(';')[0] ?? '').trim().toLowerCase();
}

/** Content-Type is application/json (parameters such as charset allowed; +json variants are not). */
export function isJsonContentType(req: PlatformRequest): boolean {
  return mediaType(header(req, 'content-type') ?? '') === 'application/json';
}

/** Accept lists application/json itself (wildcards do not count: the platform asks for it by name). */
export function acceptsJson(req: PlatformRequest): boolean {
  const accept = header(req, 'accept');
  if (accept === undefined) return false;
  return accept.split(',').some((range) => mediaType(range) === 'application/json');
}

export type JsonParse = { ok: true; value: unknown } | { ok: false; message: string };

export function parseJson(text: string): JsonParse {
  if (text.trim() === '') return { ok: false, message: 'request body required' };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, message: `invalid JSON body: ${(err as Error).message}` };
  }
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** Name of a JSON value's type, for error messages. */
export function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (Number.isInteger(v)) return 'integer';
  return typeof v;
}

/** Writes a reply as JSON (or empty); does nothing when the client is already gone. */
export function writeReply(res: ServerResponse, reply: Reply): void {
  if (res.destroyed || res.writableEnded) return;
  const payload = reply.body === undefined ? '' : JSON.stringify(reply.body);
  const headers: Record<string, string | number> = { ...reply.headers, 'content-length': Buffer.byteLength(payload) };
  if (reply.body !== undefined) headers['content-type'] = 'application/json';
  res.writeHead(reply.status, headers);
  res.end(payload);
}
