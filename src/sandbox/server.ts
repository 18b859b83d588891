/**
 * One node:http server standing in for every registered platform (./platforms.ts) on one port
 * (their paths do not collide). Every platform request goes through the same pipeline, in the order a
 * load balancer in front of a real platform would impose:
 *
 *   arrive (in-flight++) -> read body -> target key known (per-key in-flight++) -> over capacity?
 *   -> reset? -> throttle? -> fail? -> drop? (writes) -> too large? -> route -> handler -> slow?
 *   -> latency (x load over capacity, + slowMs) -> write (both in-flights-- when the answer ends, or the connection closes)
 *
 * A reset destroys the connection with a TCP RST and answers nothing; nothing was applied.
 * A slow answer was applied and is merely late. A dropped write is answered as usual, but its
 * platform's state is put back as it was before the handler ran.
 *
 * `/__sandbox/*` is the control plane and skips all of it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { controlAnswer } from './control.js';
import { FaultInjector, type TransportFault } from './faults.js';
import { writeReply, type PlatformRequest, type Reply } from './http.js';
import {
  compileLimitKeyPattern,
  configOf,
  parseConfig,
  resolveOptions,
  type SandboxConfig,
  type SandboxOptions,
} from './options.js';
import type { BoundOperation, BoundRoute, SharedEnv } from './platforms.js';
import { SandboxState, type SandboxFixtures } from './state.js';
import { StatsRecorder, type SandboxCounters, type SandboxStats } from './stats.js';

/** Platform request bodies above this are refused with 413. */
const MAX_BODY_BYTES = 1024 * 1024;
/** The control plane takes big fixture files (benchmarks load whole fleets). */
const MAX_CONTROL_BODY_BYTES = 256 * 1024 * 1024;

export interface ReceivedRequest {
  method: string;
  /** As received: percent-encoding and query string included. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** `Date.now()` when the request arrived (before its body was read). */
  at: number;
  /** The status answered (set once the answer is decided, before the latency wait); absent for a reset. */
  status?: number;
  /**
   * Set when the request met a fault that its status does not show: reset, answered `slowMs`
   * late, or a 2xx write whose change was not kept (`dropped`, which wins over `slow`).
   */
  fault?: 'reset' | 'slow' | 'dropped';
  /** How long the answer was held back once decided: `latencyMs` (scaled over `capacity`) plus `slowMs` when slow; absent for a reset. */
  delayMs?: number;
  /** `Date.now()` when the answer was written (after the latency wait); absent for a reset or a client gone first. */
  answeredAt?: number;
}

export interface Sandbox {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** Adds or replaces records. Throws on fixtures of the wrong shape. */
  load(fixtures: SandboxFixtures): void;
  /** Clears state, stats and recorded requests, and restarts the fault sequence from the seed. */
  reset(): void;
  configure(config: SandboxConfig): void;
  stats(): SandboxStats;
  /**
   * The scalar counters only, without copying: `stats()` deep-copies the per-target maps (one entry
   * per target, 40,000 for a 20,000-target run), which a sampler calling it every 10 ms turns into
   * the sandbox's own stall (measured: the adaptive bench's fixed 40 at 0.35 of its ideal).
   */
  counters(): SandboxCounters;
  /** Deep copy of the current state, in fixture shape. */
  state(): SandboxFixtures;
  /** Every platform request, when started with `record: true`; otherwise null. */
  received: ReceivedRequest[] | null;
  /** Resolves once `n` platform requests have arrived since start (or the last reset). */
  requestsReached(n: number): Promise<void>;
  /** Stops listening and drops every connection, keep-alive ones included. */
  close(): Promise<void>;
}

export async function startSandbox(opts: Partial<SandboxOptions> = {}): Promise<Sandbox> {
  const options = resolveOptions(opts);
  const config = configOf(options);
  const waiters: { n: number; resolve: () => void }[] = [];
  const wakeWaiters = (): void => {
    const seen = stats.snapshotRequests();
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (seen >= waiters[i]!.n) waiters.splice(i, 1)[0]!.resolve();
    }
  };
  /** `config.limitKeyPattern`, compiled once per change rather than per request. */
  let limitKeyRe = compile(config.limitKeyPattern);
  const stats = new StatsRecorder();
  const faults = new FaultInjector(options.seed);
  const shared: SharedEnv = {
    config,
    faults,
    applied: (key) => stats.applied(key),
    conflictInjected: () => stats.conflict(),
  };
  const state = new SandboxState(shared, options.keys);
  const routes = state.routes();
  const received: ReceivedRequest[] | null = options.record ? [] : null;

  const controls = {
    load: (fixtures: unknown) => state.load(fixtures),
    reset: () => {
      state.clear();
      stats.reset();
      faults.reseed();
      received?.splice(0);
    },
    configure: (input: unknown) => {
      const change = parseConfig(input);
      // Compiled before anything is assigned, so a change is applied whole or not at all.
      const re = change.limitKeyPattern === undefined ? limitKeyRe : compile(change.limitKeyPattern);
      Object.assign(config, change);
      limitKeyRe = re;
    },
    stats: () => stats.snapshot(),
    state: () => state.snapshot(),
  };

  async function onPlatformRequest(req: IncomingMessage, res: ServerResponse, rawUrl: string): Promise<void> {
    const at = Date.now();
    let closed = false;
    let endKey: (() => void) | undefined;
    const end = stats.begin();
    wakeWaiters();
    res.once('close', () => {
      closed = true;
      end();
      endKey?.();
    });

    const body = await readBody(req, MAX_BODY_BYTES);
    const record: ReceivedRequest = { method: req.method ?? '', path: rawUrl, headers: { ...req.headers }, body: body.text, at };
    received?.push(record);

    const onTarget = (target: string): string | undefined => {
      stats.target(target);
      const limitKey = limitKeyRe?.exec(target)?.[1];
      // A client already gone would never 'close' again: counting it now would never end.
      if (limitKey !== undefined && !closed) endKey = stats.beginKey(limitKey);
      return limitKey;
    };
    const decision = answer(req.method ?? '', rawUrl, req.headers, body, config, faults, stats, routes, onTarget);
    if (decision.kind === 'reset') {
      record.fault = 'reset';
      resetConnection(req);
      return;
    }
    const { reply } = decision;
    record.status = reply.status;
    if (decision.slow) record.fault = 'slow';
    if (decision.dropped) record.fault = 'dropped';
    // State already changed; the answer is merely late, like a slow network after a commit.
    const delayMs = Math.round(config.latencyMs * decision.latencyScale) + (decision.slow ? config.slowMs : 0);
    record.delayMs = delayMs;
    if (delayMs > 0) await delayUnlessClosed(delayMs, res);
    if (!res.destroyed && !res.writableEnded) stats.status(reply.status);
    writeReply(res, reply);
    if (!closed) record.answeredAt = Date.now();
  }

  const server = createServer((req, res) => {
    const rawUrl = req.url ?? '/';
    const rawPath = rawUrl.split('?', 1)[0] ?? '';
    const pending = rawPath.startsWith('/__sandbox/')
      ? readBody(req, MAX_CONTROL_BODY_BYTES).then((body) =>
          writeReply(
            res,
            body.tooLarge
              ? { status: 413, body: { message: 'payload too large' } }
              : controlAnswer(controls, req.method ?? '', rawPath, body.text),
          ),
        )
      : onPlatformRequest(req, res, rawUrl);
    pending.catch((err: unknown) => {
      // A client that hangs up mid-body ends here; anything else is a sandbox bug worth seeing.
      writeReply(res, { status: 500, body: { message: `sandbox error: ${(err as Error).message}` } });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${options.host === '0.0.0.0' ? '127.0.0.1' : options.host}:${port}`,
    load: (fixtures) => controls.load(fixtures),
    reset: controls.reset,
    configure: (c) => void controls.configure(c),
    stats: controls.stats,
    counters: () => stats.counters(),
    state: controls.state,
    received,
    requestsReached: (n) =>
      new Promise<void>((resolve) => {
        waiters.push({ n, resolve });
        wakeWaiters();
      }),
    close: () => closeServer(server),
  };
}

/* Pipeline ----------------------------------------------------------------------------------- */

interface Body {
  text: string;
  tooLarge: boolean;
}

/** What becomes of one platform request: reset without an answer, or answered (maybe late). */
type Decision =
  | { kind: 'reset' }
  | {
      kind: 'reply';
      reply: Reply;
      slow: boolean;
      dropped: boolean;
      /** `latencyMs` is multiplied by this: 1, more when the key is over `capacity`, 0 for a shed request. */
      latencyScale: number;
    };

/**
 * The fate of one platform request, computed synchronously so a state change and its answer
 * (and every fault draw) can never be interleaved with another request's: the same seed and the
 * same request sequence give the same faults.
 */
function answer(
  method: string,
  rawUrl: string,
  headers: IncomingMessage['headers'],
  body: Body,
  config: Required<SandboxConfig>,
  faults: FaultInjector,
  stats: StatsRecorder,
  routes: readonly BoundRoute[],
  onTarget: (target: string) => string | undefined,
): Decision {
  const queryAt = rawUrl.indexOf('?');
  const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
  const query = new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1));
  const segments = splitPath(rawPath);
  const match = segments === null ? undefined : matchRoute(routes, segments);
  const op: BoundOperation | undefined = match && Object.hasOwn(match.route.methods, method) ? match.route.methods[method] : undefined;
  const req: PlatformRequest = { method, params: match?.params ?? {}, query, headers, body: body.text };

  // Counted before faults: a throttled or failed attempt still reached (the front of) the target.
  const target = op?.target?.(req);
  const limitKey = target === undefined ? undefined : onTarget(target);

  let latencyScale = 1;
  if (config.capacity !== null) {
    // The platform's front door sheds before anything else can happen to the request.
    const load = stats.load(limitKey);
    if (load > 2 * config.capacity) {
      stats.overCapacity();
      return { kind: 'reply', reply: tooManyRequests(1), slow: false, dropped: false, latencyScale: 0 };
    }
    latencyScale = Math.max(1, load / config.capacity);
  }

  const fault = faults.transportFault(config);
  if (fault?.kind === 'reset') {
    stats.connectionReset();
    return { kind: 'reset' };
  }
  if (fault) return { kind: 'reply', reply: faultReply(fault, config, stats), slow: false, dropped: false, latencyScale };

  // Only writes a handler will see draw: reads never change state, and a rate of 0 draws nothing.
  const drop = op !== undefined && method !== 'GET' && method !== 'HEAD' && faults.dropWrite(config.dropWriteRate);
  const reply = platformAnswer(body, segments, match, op, req, drop);
  const dropped = drop && reply.status >= 200 && reply.status < 300;
  if (dropped) stats.droppedWrite();
  const slow = faults.slowAnswer(config);
  if (slow) stats.slowed();
  return { kind: 'reply', reply, slow, dropped, latencyScale };
}

/** The platform's own answer, once the request got past the transport faults. */
function platformAnswer(
  body: Body,
  segments: string[] | null,
  match: { route: BoundRoute; params: Record<string, string> } | undefined,
  op: BoundOperation | undefined,
  req: PlatformRequest,
  drop: boolean,
): Reply {
  const platformError = (status: number, message: string): Reply => ({
    status,
    body: match ? match.route.error(status, message) : { message },
  });
  if (body.tooLarge) return platformError(413, `request body larger than ${MAX_BODY_BYTES} bytes`);
  if (segments === null) return { status: 400, body: { message: 'malformed percent-encoding in path' } };
  if (!match) return { status: 404, body: { message: 'no route' } };
  if (!op) {
    return { ...platformError(405, 'method not allowed'), headers: { allow: Object.keys(match.route.methods).join(', ') } };
  }
  try {
    return op.handle(req, drop);
  } catch (err) {
    // A sandbox bug: answer it visibly (and count it) rather than hang the client.
    return { status: 500, body: { message: `sandbox error: ${(err as Error).message}` } };
  }
}

function compile(pattern: string | null): RegExp | null {
  return pattern === null ? null : compileLimitKeyPattern(pattern);
}

function faultReply(fault: Exclude<TransportFault, { kind: 'reset' }>, config: Required<SandboxConfig>, stats: StatsRecorder): Reply {
  const retryAfter = { 'retry-after': String(config.retryAfterS) };
  if (fault.kind === 'throttle') {
    stats.throttled();
    return tooManyRequests(config.retryAfterS);
  }
  stats.failed();
  return {
    status: fault.status,
    body: { message: 'injected fault', retryable: true },
    ...(fault.status === 503 ? { headers: retryAfter } : {}),
  };
}

/** The platform's 429: an injected throttle and a shed over-capacity request look the same. */
function tooManyRequests(retryAfterS: number): Reply {
  return { status: 429, body: { message: 'too many requests', retryable: true }, headers: { 'retry-after': String(retryAfterS) } };
}

/**
 * Splits the raw path on '/' first and only then decodes each segment, so an id holding an
 * encoded '/', '?', '#' or '%' stays one segment and is looked up literally. Null when a
 * segment is not valid percent-encoding, or the path is not origin-form.
 */
function splitPath(rawPath: string): string[] | null {
  if (!rawPath.startsWith('/')) return null;
  try {
    return rawPath.slice(1).split('/').map(decodeURIComponent);
  } catch {
    return null;
  }
}

function matchRoute(routes: readonly BoundRoute[], segments: string[]): { route: BoundRoute; params: Record<string, string> } | undefined {
  for (const route of routes) {
    if (route.pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const fits = route.pattern.every((part, i) => {
      const seg = segments[i]!;
      if (!part.startsWith(':')) return part === seg;
      params[part.slice(1)] = seg;
      return seg !== ''; // '/api/workflow//upgrade' names no execution
    });
    if (fits) return { route, params };
  }
  return undefined;
}

/* I/O ---------------------------------------------------------------------------------------- */

/** Reads the whole body (draining past the limit, so the answer can still be written on the same connection). */
function readBody(req: IncomingMessage, limit: number): Promise<Body> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.once('end', () => {
      const tooLarge = size > limit;
      resolve({ text: tooLarge ? '' : Buffer.concat(chunks).toString('utf8'), tooLarge });
    });
    req.once('error', reject);
  });
}

/** setTimeout's longest delay; anything above it fires at once (with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Waits `ms`, or less if the client hangs up first (its timeout fired): there is nobody left to
 * answer, and a long `slowMs` must not hold the request (or a closing sandbox) for nothing.
 */
function delayUnlessClosed(ms: number, res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      res.off('close', done);
      resolve();
    };
    // unref: a sandbox closed mid-delay must not keep the process alive; the write is skipped then.
    const timer = setTimeout(done, Math.min(ms, MAX_TIMER_MS)).unref();
    res.once('close', done);
  });
}

/**
 * Drops the connection with a TCP RST (no FIN, no answer), as a crashing proxy or a middlebox
 * would. Falls back to a plain destroy where a reset is not possible (not a TCP socket).
 */
function resetConnection(req: IncomingMessage): void {
  const socket = req.socket;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve()); // also calls back (with an error) when already closed
    server.closeAllConnections();
  });
}
