import { InputError, type InputErrorCode, type InputIssue } from '../../shared/index.js';

/** The `error` field of every error answer: what kind of failure, for programs to branch on. */
export type ApiErrorCode =
  | 'invalid_input'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'unavailable'
  | 'internal';

/** One problem with the input: the path inside the value checked, and the NDJSON line when it has one. */
export interface ApiIssue extends InputIssue {
  readonly line?: number;
}

/** Every 4xx/5xx answer of the API has this shape. */
export interface ApiErrorBody {
  readonly error: ApiErrorCode;
  /** One line for people, naming the source, line and field when there are ones. */
  readonly message: string;
  /** The input rule broken, when it has a code of its own (`CONNECTION_NOT_REGISTERED`). */
  readonly code?: InputErrorCode;
  /** What was wrong (`spec`, `spec targets`, `request body`, `query`, ...). */
  readonly source?: string;
  readonly line?: number;
  readonly field?: string;
  readonly issues?: readonly ApiIssue[];
}

/** An answer decided by a route: thrown, and sent as is by the error handler. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: ApiErrorBody,
  ) {
    super(body.message);
    this.name = 'HttpError';
  }
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
    error: 'invalid_input',
    message: err.message,
    ...(err.code === 'INVALID_INPUT' ? {} : { code: err.code }),
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
export function plainMessage(err: InputError): string {
  const at = err.message.indexOf(': ');
  return at >= 0 ? err.message.slice(at + 2) : err.message;
}

export function notFound(what: string): HttpError {
  return new HttpError(404, { error: 'not_found', message: what });
}

export function conflict(message: string): HttpError {
  return new HttpError(409, { error: 'conflict', message });
}
