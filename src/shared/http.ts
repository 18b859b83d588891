import { Agent, request, type Dispatcher } from 'undici';
import { DEFAULTS } from './config.js';
import { guardedConnector } from './egress.js';
import { UpshiftError } from './errors.js';
import type { ReasonCode } from './reasons.js';
import { LightSignal, type AbortSignalLike } from './signal.js';

/**
 * HTTP for platform calls: undici `request` over one keep-alive Agent per process (it pools per
 * origin), a hard per-call timeout, and answer bodies read only up to a bound.
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

/** Wraps a request's handler so the gate is asked in `onRequestStart`, the last step before the write. */
class GatedHandler implements Dispatcher.DispatchHandler {
  constructor(
    private readonly handler: Dispatcher.DispatchHandler,
    private readonly gate: SendGate,
  ) {}
  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    // Thrown, not `controller.abort()`: undici then fails the request before writing it and
    // keeps the socket (an abort would destroy it).
    if (!this.gate()) throw new NotSentError();
    this.handler.onRequestStart?.(controller, context);
  }
  onRequestUpgrade(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>): void {
    this.handler.onRequestUpgrade?.(...args);
  }
  onResponseStart(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>): void {
    this.handler.onResponseStart?.(...args);
  }
  onResponseData(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseData']>>): void {
    this.handler.onResponseData?.(...args);
  }
  onResponseEnd(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>): void {
    this.handler.onResponseEnd?.(...args);
  }
  onResponseError(...args: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseError']>>): void {
    this.handler.onResponseError?.(...args);
  }
}

type GatedOptions = Dispatcher.DispatchOptions & { readonly gate?: SendGate };

const gateInterceptor: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
  const { gate } = opts as GatedOptions;
  return dispatch(opts, gate ? new GatedHandler(handler, gate) : handler);
};

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
  /** The same two, with the send gate in front of every write (`send`'s `gate`). */
  private readonly guardedGated: Dispatcher;
  private openGated: Dispatcher | undefined;
  private readonly agentOptions: Agent.Options;
  private readonly maxResponseBytes: number;

  constructor(opts: Partial<HttpClientOptions> = {}) {
    // Redirects are never followed (undici's request does not, and no redirect interceptor is
    // added): a 3xx is an answer like any other, so a platform cannot send the credential on.
    this.agentOptions = {
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? DEFAULTS.keepAliveTimeoutMs,
      connections: opts.connections ?? null,
    };
    this.guarded = new Agent({ ...this.agentOptions, connect: guardedConnector() });
    this.guardedGated = this.guarded.compose(gateInterceptor);
    this.maxResponseBytes = opts.maxResponseBytes ?? DEFAULTS.maxResponseBytes;
  }

  /**
   * `signal` aborts the call from outside (the worker's lease was lost); the timeout always applies.
   * `gate`, when given, is asked at the moment of the write (see `SendGate`); a call it holds
   * rejects with `NotSentError`.
   */
  async send(endpoint: Endpoint, req: HttpRequest, timeoutMs: number, signal?: AbortSignalLike, gate?: SendGate): Promise<HttpResponse> {
    const url = buildUrl(endpoint.baseUrl, req.segments, req.query);
    let dispatcher: Dispatcher;
    if (endpoint.privateNetwork) {
      this.open ??= new Agent(this.agentOptions);
      dispatcher = gate ? (this.openGated ??= this.open.compose(gateInterceptor)) : this.open;
    } else {
      dispatcher = gate ? this.guardedGated : this.guarded;
    }
    const headers: Record<string, string> = { ...req.headers };
    let body: string | undefined;
    if (req.json !== undefined || req.rawJson !== undefined) {
      body = req.json !== undefined ? JSON.stringify(req.json) : req.rawJson;
      headers['content-type'] = 'application/json';
    }
    // One light signal and one timer per call (signal.ts says what the DOM ones cost).
    const call = new LightSignal();
    const timer = setTimeout(() => call.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    const onAbort = () => call.abort(signal!.reason);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await request(url, {
        dispatcher,
        method: req.method,
        headers,
        body,
        signal: call,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(gate ? { gate } : {}),
      } as Parameters<typeof request>[1]);
      const { text, truncated } = await readBounded(res.body, this.maxResponseBytes, res.headers['content-length']);
      return { status: res.statusCode, headers: res.headers, text, truncated };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
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

async function readBounded(
  body: Dispatcher.ResponseData['body'],
  limit: number,
  contentLength?: string | string[],
): Promise<{ text: string; truncated: boolean }> {
  // A declared length within the bound is read whole by undici's own consumer: its parser ends
  // the body at that length, so it cannot grow past it. The chunk loop below (an async iterator
  // and its stream plumbing per call) is for a chunked answer or a longer one.
  if (typeof contentLength === 'string' && /^\d+$/.test(contentLength) && Number(contentLength) <= limit) {
    return { text: await body.text(), truncated: false };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size + buf.length > limit) {
      chunks.push(buf.subarray(0, limit - size));
      body.destroy();
      return { text: Buffer.concat(chunks).toString('utf8'), truncated: true };
    }
    chunks.push(buf);
    size += buf.length;
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: false };
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
