import { Agent, type Dispatcher } from 'undici';
import { DEFAULTS } from './config.js';
import { guardedConnector } from './egress.js';
import { UpshiftError } from './errors.js';
import type { ReasonCode } from './reasons.js';
import type { AbortSignalLike } from './signal.js';

/**
 * HTTP for platform calls: undici's `dispatch` over one keep-alive Agent per process (it pools
 * per origin), a hard per-call timeout, and answer bodies read only up to a bound.
 */

export interface HttpRequest {
  readonly method: 'GET' | 'PUT' | 'POST' | 'PATCH';
  /** Path segments, unencoded: each is percent-encoded whole, so no id can add a segment. */
  readonly segments: readonly string[];
  readonly query?: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  /** Sent as JSON with `content-type: application/json` when present. */
  readonly json?: unknown;
  /** Sent byte for byte as JSON (a webhook's signed body), when `json` is absent. */
  readonly rawJson?: string;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly text: string;
  /** The body passed `maxResponseBytes` and was cut off. */
  readonly truncated: boolean;
}

export interface HttpClientOptions {
  readonly keepAliveTimeoutMs: number;
  readonly maxResponseBytes: number;
  /** Sockets per origin; undefined means unlimited (the worker's concurrency bounds it). */
  readonly connections?: number;
}

/**
 * A call held back at the moment undici was about to write it, because its `gate` said no.
 * Nothing of the request reached the socket; sending it again later is safe.
 */
export class NotSentError extends Error {
  constructor() {
    super('held before any byte was written');
    this.name = 'NotSentError';
  }
}

/**
 * Asked synchronously right before the request's first byte is written (after undici has a
 * connected socket for it): `false` holds the call (`NotSentError`), the socket stays usable.
 */
export type SendGate = () => boolean;

/**
 * One call's undici handler: asks the send gate right before the write, and keeps the answer's
 * body up to the bound. It is undici's `dispatch` API, not `request`: `request` makes a
 * Readable stream, its listeners and an abort-signal binding per answer, then the body is read
 * back out of it; this handler takes the chunks as they come (measured in BENCHMARKS.md).
 */
class CallHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  /** Set by `abort` before undici started the request: it is then dropped at its start. */
  private abortReason: Error | undefined;
  private settled = false;
  private status = 0;
  private headers: Record<string, string | string[] | undefined> = {};
  private chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  constructor(
    private readonly limit: number,
    private readonly gate: SendGate | undefined,
    private readonly resolve: (res: HttpResponse) => void,
    private readonly reject: (err: unknown) => void,
  ) {}

  /** Ends the call with `reason` (timeout, lease lost), at once, whether or not it has started. */
  abort(reason: Error): void {
    if (this.settled) return;
    if (this.controller) {
      this.controller.abort(reason);
      return;
    }
    this.abortReason = reason;
    this.settle(undefined, reason);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason !== undefined) throw this.abortReason;
    // Thrown, not `controller.abort()`: undici then fails the request before writing it and
    // keeps the socket (an abort would destroy it).
    if (this.gate && !this.gate()) throw new NotSentError();
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // An informational answer (103 Early Hints) is not the answer: the final one follows.
    if (statusCode < 200) return;
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.truncated) return;
    if (this.size + chunk.length > this.limit) {
      // Kept up to the bound; the rest is never read (the socket goes with the abort).
      this.chunks.push(chunk.subarray(0, this.limit - this.size));
      this.truncated = true;
      this.settle(this.answer(), undefined);
      controller.abort(new Error('answer body over the size bound'));
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  onResponseEnd(): void {
    this.settle(this.answer(), undefined);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.settle(undefined, err);
  }

  private answer(): HttpResponse {
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    return { status: this.status, headers: this.headers, text: body.toString('utf8'), truncated: this.truncated };
  }

  private settle(res: HttpResponse | undefined, err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.chunks = [];
    if (res) this.resolve(res);
    else this.reject(err);
  }
}

/** Where a call goes: the registered connection's base URL and whether it may reach private addresses. */
export interface Endpoint {
  readonly baseUrl: string;
  readonly privateNetwork: boolean;
}

export class HttpClient {
  /** Public addresses only: the egress guard checks every resolved address at connect time. */
  private readonly guarded: Agent;
  /** For connections the operator registered with `privateNetwork: true`; made when first needed. */
  private open: Agent | undefined;
  private readonly agentOptions: Agent.Options;
  private readonly maxResponseBytes: number;

  constructor(opts: Partial<HttpClientOptions> = {}) {
    // Redirects are never followed (the handler below reads a 3xx as the answer it is, and no
    // redirect interceptor is added), so a platform cannot send the credential on.
    this.agentOptions = {
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? DEFAULTS.keepAliveTimeoutMs,
      connections: opts.connections ?? null,
    };
    this.guarded = new Agent({ ...this.agentOptions, connect: guardedConnector() });
    this.maxResponseBytes = opts.maxResponseBytes ?? DEFAULTS.maxResponseBytes;
  }

  /**
   * `signal` aborts the call from outside (the worker's lease was lost); the timeout always applies.
   * `gate`, when given, is asked at the moment of the write (see `SendGate`); a call it holds
   * rejects with `NotSentError`.
   */
  send(endpoint: Endpoint, req: HttpRequest, timeoutMs: number, signal?: AbortSignalLike, gate?: SendGate): Promise<HttpResponse> {
    // Everything runs inside the executor: a URL or a body that cannot be made rejects the
    // call, as an async function's throw would, instead of throwing at the caller.
    return new Promise<HttpResponse>((resolve, reject) => {
      // Parsed as undici's `request` parses it: the origin picks the pool, the path is normalised.
      const url = new URL(buildUrl(endpoint.baseUrl, req.segments, req.query));
      const dispatcher = endpoint.privateNetwork ? (this.open ??= new Agent(this.agentOptions)) : this.guarded;
      // undici copies the headers into its request; a copy of ours only when one is added.
      let headers = req.headers;
      let body: string | undefined;
      if (req.json !== undefined || req.rawJson !== undefined) {
        body = req.json !== undefined ? JSON.stringify(req.json) : req.rawJson;
        headers = { ...req.headers, 'content-type': 'application/json' };
      }
      // One timer per call, and a listener on the run's light signal (signal.ts says what the DOM ones cost).
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const handler = new CallHandler(
        this.maxResponseBytes,
        gate,
        (res) => {
          done();
          resolve(res);
        },
        (err) => {
          done();
          reject(err);
        },
      );
      const timer = setTimeout(() => handler.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError') as Error), timeoutMs);
      // A reason-less abort still ends the call (and is still an error to the caller).
      const onAbort = () => handler.abort((signal!.reason as Error | undefined) ?? new DOMException('aborted', 'AbortError'));
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      // A request undici refuses outright (a header value it will not send, a closed agent)
      // comes back through the handler's onResponseError, not as a throw (DispatcherBase.dispatch).
      dispatcher.dispatch(
        { origin: url.origin, path: url.pathname + url.search, method: req.method, headers, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs },
        handler,
      );
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.guarded.close(), this.open?.close()]);
  }
}

/**
 * `baseUrl` may carry a path prefix (`https://host/conductor`); its query and fragment are
 * not allowed by the spec schema. Every segment is encoded with `encodeURIComponent`, which
 * escapes `/ ? # % & + :` and spaces, so a target id stays one path segment.
 */
export function buildUrl(
  baseUrl: string,
  segments: readonly string[],
  query?: Readonly<Record<string, string>>,
): string {
  const base = baseUrl.replace(/\/+$/, '');
  // No segments: the URL as registered (a webhook receiver's own path), no slash added.
  let url = segments.length === 0 ? baseUrl : base + '/' + segments.map((s) => encodeURIComponent(s)).join('/');
  if (query && Object.keys(query).length > 0) url += '?' + new URLSearchParams(query).toString();
  return url;
}

/** Retry-After is delta-seconds or an HTTP-date (RFC 9110 §10.2.3); anything else is ignored. */
export function parseRetryAfterMs(value: string | string[] | undefined, nowMs = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  // HTTP-dates name a weekday and GMT; Date.parse alone would take "-1" as a year.
  const date = /[A-Za-z]/.test(t) ? Date.parse(t) : Number.NaN;
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

/** Parses a JSON answer; a body that is not JSON (or was cut off) is `UNEXPECTED_RESPONSE`. */
export function parseJson(res: HttpResponse, what: string): unknown {
  if (res.truncated) {
    throw new UpshiftError('UNEXPECTED_RESPONSE', `${what}: answer body over the size bound`, { status: res.status });
  }
  try {
    return JSON.parse(res.text);
  } catch {
    throw new UpshiftError('UNEXPECTED_RESPONSE', `${what}: answer is not JSON: ${res.text.slice(0, 200)}`, {
      status: res.status,
    });
  }
}

/** Per-platform reading of a status, where a platform documents a meaning of its own. */
export type StatusOverrides = Partial<Record<number, ReasonCode>>;

/**
 * The one mapping from a non-2xx answer to an error. 429, 5xx and 408 are transient; every
 * other 4xx is permanent. Conductor marks its error bodies with `retryable`, which is honoured.
 */
export function errorFromResponse(res: HttpResponse, what: string, overrides: StatusOverrides = {}): UpshiftError {
  const s = res.status;
  const detail = `${what}: HTTP ${s}${res.text ? ` ${res.text.slice(0, 300)}` : ''}`;
  const retryAfterMs = parseRetryAfterMs(res.headers['retry-after']);
  const opts = { status: s, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
  const override = overrides[s];
  if (override) return new UpshiftError(override, detail, opts);
  if (s === 429) return new UpshiftError('THROTTLED', detail, opts);
  if (s >= 500 || s === 408) return new UpshiftError('SERVER_ERROR', detail, opts);
  const code: ReasonCode =
    s === 401 ? 'UNAUTHORIZED' : s === 403 ? 'FORBIDDEN' : s === 404 ? 'NOT_FOUND' : s === 409 ? 'STATE_CONFLICT' : 'INVALID_REQUEST';
  if (bodySaysRetryable(res.text)) return new UpshiftError(code, detail, { ...opts, retryable: true });
  return new UpshiftError(code, detail, opts);
}

function bodySaysRetryable(text: string): boolean {
  if (!text.includes('retryable')) return false;
  try {
    const body = JSON.parse(text) as { retryable?: unknown };
    return body?.retryable === true;
  } catch {
    return false;
  }
}

export function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}
