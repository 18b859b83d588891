import {
  ERRORS,
  errorCodeOf,
  InputError,
  type ApiErrorKind,
  type ErrorCode,
  type InputIssue,
  type ReasonCode,
} from '../../shared/index.js';

/** The `error` field of every error answer: what kind of failure, for programs to branch on. */
export type ApiErrorCode = ApiErrorKind;

/** One problem with the input: the path inside the value checked, and the NDJSON line when it has one. */
export interface ApiIssue extends InputIssue {
  readonly line?: number;
}

/** Every 4xx/5xx answer of the API has this shape. */
export interface ApiErrorBody {
  readonly error: ApiErrorCode;
  /** One line for people, naming the source, line and field when there are ones. */
  readonly message: string;
  /** The catalogue code (docs/ERRORS.md), on the rows that say more than `error` does (`CONNECTION_NOT_REGISTERED`). */
  readonly code?: ErrorCode;
  /** For `PLATFORM_ERROR`: the platform's refusal as a reason code (docs/REASONS.md), e.g. `INVALID_REQUEST`. */
  readonly reason?: ReasonCode;
  /** What was wrong (`spec`, `spec targets`, `request body`, `query`, ...). */
  readonly source?: string;
  readonly line?: number;
  readonly field?: string;
  readonly issues?: readonly ApiIssue[];
}

/** An error answer: the status and the body, both from the code's catalogue row. */
export interface ApiAnswer {
  readonly code: ErrorCode;
  readonly status: number;
  readonly body: ApiErrorBody;
}

/** The body of a catalogue code's answer: its `error` kind, and its `code` when the row names it. */
export function apiErrorBody(code: ErrorCode, message: string, extra: Omit<ApiErrorBody, 'error' | 'message' | 'code'> = {}): ApiErrorBody {
  const row = ERRORS[code];
  return { error: row.api, message, ...(row.apiCode ? { code } : {}), ...extra };
}

/** An answer decided by a route (a body with more than the thrown error knows): thrown, and sent as is. */
export class HttpError extends Error {
  readonly statusCode: number;

  constructor(
    readonly errorCode: ErrorCode,
    readonly body: ApiErrorBody,
  ) {
    super(body.message);
    this.name = 'HttpError';
    this.statusCode = ERRORS[errorCode].httpStatus;
  }
}

/**
 * The answer to any error a route threw: a look-up of its catalogue code. Only the body's detail
 * depends on what was thrown (an input error's source, line, field and issues; a platform's
 * reason); codes whose message is the server's business (`INTERNAL`, `REDIS_UNAVAILABLE`) answer
 * with the row's message.
 */
export function errorAnswer(err: unknown): ApiAnswer {
  if (err instanceof HttpError) return { code: err.errorCode, status: err.statusCode, body: err.body };
  const { code, status } = errorCodeOf(err);
  const row = ERRORS[code];
  const answer = (body: ApiErrorBody): ApiAnswer => ({ code, status: status ?? row.httpStatus, body });
  if (row.hidesDetail) return answer(apiErrorBody(code, row.message));
  if (err instanceof InputError) return answer(row.api === 'invalid_input' ? inputErrorBody(err) : apiErrorBody(code, plainMessage(err)));
  const message = err instanceof Error ? err.message : String(err);
  const reason = (err as { code?: unknown }).code;
  return answer(apiErrorBody(code, message, code === 'PLATFORM_ERROR' && typeof reason === 'string' ? { reason: reason as ReasonCode } : {}));
}

/** Where the errors of inline targets come from (`enqueueSourced` names them so). */
const INLINE_TARGETS = 'spec targets';

/**
 * An `InputError` as an answer body. Inline targets are reported at their place in the spec
 * (`targets[i].field`), streamed ones with their line; an error that has no zod issues (bad
 * JSON, a limit key a target cannot fill) becomes one issue from its field.
 */
export function inputErrorBody(err: InputError, opts: { readonly line?: number } = {}): ApiErrorBody {
  const line = err.line ?? opts.line;
  const inline = err.source === INLINE_TARGETS && err.line !== undefined;
  const base = err.issues ?? [{ path: err.field === undefined || err.field === '' ? [] : fieldToPath(err.field), message: plainMessage(err) }];
  const issues: ApiIssue[] = base.map((i) =>
    inline ? { path: ['targets', err.line! - 1, ...i.path], message: i.message } : line === undefined ? { ...i } : { ...i, line },
  );
  return {
    ...apiErrorBody(err.code, err.message),
    source: err.source,
    ...(line === undefined ? {} : { line }),
    ...(err.field === undefined || err.field === '' ? {} : { field: err.field }),
    issues,
  };
}

/** `limits[0].key` -> `['limits', 0, 'key']`. */
function fieldToPath(field: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) out.push(m[2] === undefined ? m[1]! : Number(m[2]));
  return out;
}

/** The message without the `source, line n, field "x": ` lead (an issue says it by its path and line). */
function plainMessage(err: InputError): string {
  const at = err.message.indexOf(': ');
  return at >= 0 ? err.message.slice(at + 2) : err.message;
}

export function notFound(id: string): HttpError {
  return new HttpError('CAMPAIGN_NOT_FOUND', apiErrorBody('CAMPAIGN_NOT_FOUND', `no campaign "${id}"`));
}
