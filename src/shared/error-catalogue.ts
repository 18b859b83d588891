/**
 * Upshift's OWN errors, one row each, as Fastify keeps its `createError(code, message, status)`
 * rows in one file: the HTTP API's status and `error` kind, the CLI's exit code and whether a
 * caller may simply try again are read from here, never chosen by `instanceof` or by a message.
 * The platforms' reason codes (what a target's record says: `THROTTLED`, `INVALID_REQUEST`, ...)
 * are another catalogue, `reasons.ts`; a platform's refusal reaches a caller as one row here,
 * `PLATFORM_ERROR`, carrying its reason. Every row is documented in docs/ERRORS.md (a test checks
 * both ways).
 */

/** The `error` field of every API error answer: what kind of failure, for programs to branch on. */
export type ApiErrorKind =
  | 'invalid_input'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'platform_error'
  | 'unavailable'
  | 'internal';

/** Exit codes of the CLI: 0 ok, 2 the input was wrong (fix it and run again), 1 anything else. */
export const EXIT = { ok: 0, failure: 1, input: 2 } as const;

export interface ErrorRow {
  /** The message, `{name}` standing for what the error names; `catalogueMessage` fills it in. */
  readonly message: string;
  readonly httpStatus: number;
  readonly api: ApiErrorKind;
  /**
   * Whether an API answer names this code in its `code` field. Codes that say no more than
   * `error` does (`INVALID_INPUT` is `invalid_input`, a campaign that is not there is
   * `not_found`) stay out of the answer, as they always have.
   */
  readonly apiCode: boolean;
  readonly exitCode: (typeof EXIT)['failure'] | (typeof EXIT)['input'];
  /** True when the same request may succeed later unchanged (someone else's work ends, Redis comes back). */
  readonly retryable: boolean;
  /** The API answers with the row's message, not the error's: what went wrong inside is the server's log's business. */
  readonly hidesDetail: boolean;
}

function row(
  api: ApiErrorKind,
  httpStatus: number,
  exitCode: ErrorRow['exitCode'],
  message: string,
  opts: { apiCode?: boolean; retryable?: boolean; hidesDetail?: boolean } = {},
): ErrorRow {
  return { message, httpStatus, api, apiCode: opts.apiCode ?? false, exitCode, retryable: opts.retryable ?? false, hidesDetail: opts.hidesDetail ?? false };
}

export const ERRORS = {
  INVALID_INPUT: row('invalid_input', 400, EXIT.input, '{source}, line {line}, field "{field}": {problem}'),
  CONNECTION_NOT_REGISTERED: row('invalid_input', 400, EXIT.input, 'spec, field "connection": connection "{name}" is not in the registry', { apiCode: true }),
  NOTIFIER_NOT_REGISTERED: row('invalid_input', 400, EXIT.input, 'spec, field "notify[{i}].to": notifier "{name}" is not in the registry', { apiCode: true }),
  CONNECTIONS_INVALID: row('invalid_input', 400, EXIT.input, 'environment, field "UPSHIFT_CONNECTIONS": {problem}', { apiCode: true }),
  API_TOKEN_REFUSED: row('unauthorized', 401, EXIT.input, 'missing or wrong "Authorization: Bearer <UPSHIFT_API_TOKEN>"'),
  CROSS_ORIGIN_REFUSED: row('forbidden', 403, EXIT.input, 'cross-origin request refused'),
  CAMPAIGN_NOT_FOUND: row('not_found', 404, EXIT.input, 'no campaign "{id}"'),
  ROUTE_NOT_FOUND: row('not_found', 404, EXIT.input, 'no route {method} {path}'),
  CAMPAIGN_STATE_CONFLICT: row('conflict', 409, EXIT.input, 'cannot {action} campaign "{id}": it is {state}'),
  CAMPAIGN_EXISTS: row('conflict', 409, EXIT.input, 'campaign "{id}" already exists with a different spec; choose another id'),
  STAGING_IN_PROGRESS: row(
    'conflict',
    409,
    EXIT.failure,
    'campaign "{id}" is being enqueued by another producer right now; wait for it or choose another id',
    { apiCode: true, retryable: true },
  ),
  CAMPAIGN_EXPIRED: row('not_found', 410, EXIT.input, 'the data of campaign "{id}" has expired (retention); nothing is left to undo it from', { apiCode: true }),
  UNDO_NOT_POSSIBLE: row('conflict', 409, EXIT.input, 'campaign "{id}" cannot be undone: {why}', { apiCode: true }),
  UNDO_WAIT_TIMEOUT: row(
    'conflict',
    409,
    EXIT.failure,
    'campaign "{id}" is cancelled, but {active} targets were still in flight after {ms} ms; run undo again once they finish',
    { apiCode: true, retryable: true },
  ),
  PAYLOAD_TOO_LARGE: row('payload_too_large', 413, EXIT.input, 'the body is larger than {limit} bytes; split the targets over campaigns or raise the limit'),
  UNSUPPORTED_MEDIA_TYPE: row('unsupported_media_type', 415, EXIT.input, 'send the spec as application/json, or the spec and targets as {ndjson}'),
  PLATFORM_ERROR: row('platform_error', 502, EXIT.failure, '{what}: HTTP {status} {answer}', { apiCode: true }),
  REDIS_UNAVAILABLE: row('unavailable', 503, EXIT.failure, 'Redis is unreachable; try again', { retryable: true, hidesDetail: true }),
  INTERNAL: row('internal', 500, EXIT.failure, 'internal error (logged on the server)', { hidesDetail: true }),
} as const satisfies Record<string, ErrorRow>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** A row's message with its `{name}` placeholders filled in. */
export function catalogueMessage(code: ErrorCode, values: Readonly<Record<string, string | number>>): string {
  return ERRORS[code].message.replace(/\{(\w+)\}/g, (whole, name: string) => (name in values ? String(values[name]) : whole));
}

/**
 * The code of any error that reaches the API or the CLI. Upshift's errors carry theirs
 * (`errorCode`); errors from libraries are given one here, once: Fastify's own 4xx (a body it
 * could not parse or that was too large) and ioredis giving up on a command. Anything else is
 * `INTERNAL`. `status` is Fastify's own 4xx status, kept as the answer's.
 */
export function errorCodeOf(err: unknown): { readonly code: ErrorCode; readonly status?: number } {
  const e = err as { errorCode?: unknown; statusCode?: unknown; name?: unknown; code?: unknown } | null | undefined;
  if (isErrorCode(e?.errorCode)) return { code: e.errorCode };
  const status = e?.statusCode;
  if (status === 413) return { code: 'PAYLOAD_TOO_LARGE' };
  if (status === 415) return { code: 'UNSUPPORTED_MEDIA_TYPE' };
  if (typeof status === 'number' && status >= 400 && status < 500) return { code: 'INVALID_INPUT', status };
  if (e?.name === 'MaxRetriesPerRequestError' || e?.code === 'ECONNREFUSED') return { code: 'REDIS_UNAVAILABLE' };
  return { code: 'INTERNAL' };
}

/** An Upshift error of one of the catalogue's codes that is not an input error (those are `InputError`). */
export class CatalogueError extends Error {
  constructor(
    readonly errorCode: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CatalogueError';
  }

  get retryable(): boolean {
    return ERRORS[this.errorCode].retryable;
  }
}
