import type { ErrorCode } from './error-catalogue.js';
import { REASONS, type ReasonCode } from './reasons.js';

/**
 * An error whose handling is data, as in Temporal's SDK: adapters and helpers throw these,
 * and the worker decides what to do from `retryable` / `retryAfterMs` / `code` in one place
 * (`classifyError`), never by matching messages.
 */
export class UpshiftError extends Error {
  readonly code: ReasonCode;
  readonly retryable: boolean;
  /** The wait the platform asked for (Retry-After), when it named one. */
  readonly retryAfterMs: number | undefined;
  /** HTTP status of the answer that caused it, when there was one. */
  readonly status: number | undefined;

  constructor(
    code: ReasonCode,
    message: string,
    opts: { retryable?: boolean; retryAfterMs?: number; status?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UpshiftError';
    this.code = code;
    this.retryable = opts.retryable ?? REASONS[code].retryable;
    this.retryAfterMs = opts.retryAfterMs;
    this.status = opts.status;
  }

  /**
   * Its row in Upshift's own catalogue when it reaches a caller (discovery's search, run by the
   * producer): a platform's answer is `PLATFORM_ERROR` (the platform refused Upshift's request,
   * not the caller's), anything without one (a missing credential, a fault) `INTERNAL`.
   */
  get errorCode(): ErrorCode {
    return this.status === undefined ? 'INTERNAL' : 'PLATFORM_ERROR';
  }
}

/** One schema violation, as zod reported it: where (path within the value checked) and what. */
export interface InputIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/**
 * Bad input from a user: a spec, a target line, a flag, a campaign id. The CLI exits 2 on it.
 * `line` is 1-based in the NDJSON stream (or the index in inline `targets`, 1-based);
 * `field` is the dotted path of the offending field. `issues` holds every schema violation
 * (the message names only the first), for callers such as the HTTP API that show them all.
 */
export class InputError extends Error {
  readonly line: number | undefined;
  readonly field: string | undefined;
  readonly source: string;
  readonly issues: readonly InputIssue[] | undefined;
  /** Which input rule was broken (its row in error-catalogue.ts): `INVALID_INPUT` unless a rule of its own (`CONNECTION_NOT_REGISTERED`). */
  readonly code: InputErrorCode;
  /** How to correct it, when the thrower knows (the message ends `; <fix>`); the CLI adds a general hint only without one. */
  readonly fix: string | undefined;

  constructor(
    source: string,
    message: string,
    opts: { line?: number; field?: string; issues?: readonly InputIssue[]; code?: InputErrorCode; fix?: string } = {},
  ) {
    const where = [
      source,
      opts.line === undefined ? undefined : `line ${opts.line}`,
      opts.field === undefined || opts.field === '' ? undefined : `field "${opts.field}"`,
    ]
      .filter(Boolean)
      .join(', ');
    super(`${where}: ${message}${opts.fix === undefined ? '' : `; ${opts.fix}`}`);
    this.name = 'InputError';
    this.source = source;
    this.line = opts.line;
    this.field = opts.field;
    this.issues = opts.issues;
    this.code = opts.code ?? 'INVALID_INPUT';
    this.fix = opts.fix;
  }

  get errorCode(): ErrorCode {
    return this.code;
  }
}

/** The catalogue's codes for input a user can correct (the CLI exits 2 on each). */
export type InputErrorCode =
  | 'INVALID_INPUT'
  | 'CONNECTION_NOT_REGISTERED'
  | 'NOTIFIER_NOT_REGISTERED'
  | 'CONNECTIONS_INVALID'
  | 'CAMPAIGN_NOT_FOUND'
  | 'CAMPAIGN_STATE_CONFLICT'
  | 'CAMPAIGN_EXISTS'
  | 'UNDO_NOT_POSSIBLE';

export interface Classification {
  readonly code: ReasonCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly message: string;
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The one place that decides whether a failed attempt is retried, and with which code. */
export function classifyError(err: unknown): Classification {
  if (err instanceof UpshiftError) {
    return { code: err.code, retryable: err.retryable, retryAfterMs: err.retryAfterMs, message: err.message };
  }
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string; message?: string } } | null;
  const message = e?.message ?? String(err);
  // The egress guard's refusal may arrive as undici's connect error with the guard's as cause.
  const egress = e?.code === 'UPSHIFT_EGRESS_DENIED' ? e : e?.cause?.code === 'UPSHIFT_EGRESS_DENIED' ? e.cause : undefined;
  if (egress) return { code: 'EGRESS_DENIED', retryable: false, retryAfterMs: undefined, message: egress.message ?? message };
  if (e?.name === 'TimeoutError' || (e?.code !== undefined && TIMEOUT_CODES.has(e.code))) {
    return { code: 'TIMEOUT', retryable: true, retryAfterMs: undefined, message };
  }
  if (e?.code !== undefined && NETWORK_CODES.has(e.code)) {
    return { code: 'NETWORK_ERROR', retryable: true, retryAfterMs: undefined, message };
  }
  // An answer that is not valid HTTP (llhttp's HPE_* codes, undici's header bounds) comes from
  // the platform or a proxy, not from Upshift: a network fault, retried like one.
  if (e?.code !== undefined && (e.code.startsWith('HPE_') || e.code === 'UND_ERR_HEADERS_OVERFLOW' || e.name === 'HTTPParserError')) {
    return { code: 'NETWORK_ERROR', retryable: true, retryAfterMs: undefined, message: `malformed HTTP answer: ${message}` };
  }
  // Anything else is a bug or an unknown fault: retry it, so a transient oddity cannot fail a
  // target for good, and let `RETRIES_EXHAUSTED` carry the message if it keeps happening.
  return { code: 'INTERNAL_ERROR', retryable: true, retryAfterMs: undefined, message };
}
