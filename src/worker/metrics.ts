import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import {
  classifyError,
  FleetGauges,
  type ClaimResult,
  type FleetGaugeOptions,
  type HttpResponse,
  type MetricsEndpoint,
  type ReasonCode,
  type RecordedOutcome,
} from '../shared/index.js';

/**
 * What the processor reports about one target run. The hot path: every method is a couple of
 * increments on children bound once per operation type, no Redis, no log line. With tracing on,
 * the same calls also fill the run's span.
 */
export interface TargetRun {
  claimed(claim: ClaimResult): void;
  /** Times one platform call; `send` starts it. */
  call(method: string, send: () => Promise<HttpResponse>): Promise<HttpResponse>;
  /** A call waited at the send gate from `fromMs` (performance.now()): a Retry-After pause, or Redis's word on it. */
  heldSince(fromMs: number): void;
  conflict(): void;
  /** A transient error: `requeued` is false when the lease was lost meanwhile (nothing counted in Redis). */
  retried(code: ReasonCode, requeued: boolean): void;
  /** A Retry-After pause of `waitMs`; `untilMs` is null when the lease was lost meanwhile. */
  throttled(waitMs: number, untilMs: number | null): void;
  /** `recorded` is false when the outcome had been recorded before (a repeated run). */
  settled(outcome: RecordedOutcome, reason: ReasonCode, recorded: boolean): void;
  /** The lease could not be renewed: the call was aborted and the target requeued by Redis. */
  leaseLost(): void;
  end(): void;
}

export interface WorkerMetricsOptions extends FleetGaugeOptions {
  /** Spans for each target run; undefined when tracing is off. */
  readonly tracer?: Tracer | undefined;
  /** Node's process metrics (CPU, memory, event loop, GC) too: on when served over HTTP. */
  readonly processMetrics?: boolean;
}

/** Platform latency buckets, in seconds: from a LAN sandbox to a slow SaaS near its timeout. */
const CALL_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Statuses reported as themselves; any other answer is reported by class (`4xx`), so a platform
 * cannot grow the label set beyond a known bound.
 */
const NAMED_STATUSES = new Set([200, 201, 202, 204, 400, 401, 403, 404, 408, 409, 412, 422, 429, 500, 502, 503, 504]);

function statusLabel(status: number): string {
  if (NAMED_STATUSES.has(status)) return String(status);
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

/** A call without an answer: timed out, or failed (reset, refused, aborted). */
function errorLabel(err: unknown): string {
  return classifyError(err).code === 'TIMEOUT' ? 'timeout' : 'error';
}

const CLAIM_RESULTS = ['claimed', 'connection_paused', 'campaign_paused', 'lost', 'duplicate', 'done'] as const;
type ClaimLabel = (typeof CLAIM_RESULTS)[number];

function claimLabel(claim: ClaimResult): ClaimLabel {
  if (claim.kind === 'paused') return claim.untilMs > 0 ? 'connection_paused' : 'campaign_paused';
  return claim.kind;
}

type Labels = Readonly<Record<string, string>>;

/** One labelled series' increments since the last scrape: a plain number on the hot path. */
interface CounterCell {
  n: number;
}

/**
 * A counter family whose children are plain numbers, handed to prom-client when it collects.
 * (prom-client's own children hash their labels on every increment, about a microsecond; a
 * target makes several increments, and the worker's throughput is benchmarked.)
 */
class CounterFamily {
  private readonly cells: { readonly labels: Labels; readonly cell: CounterCell }[] = [];
  /** Creates a series at 0, so it is exposed before its first increment. */
  private readonly zero: (labels: Labels) => void;

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    const cells = this.cells;
    const counter = new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        for (const c of cells) {
          if (c.cell.n > 0) this.inc(c.labels, c.cell.n);
          c.cell.n = 0;
        }
      },
    });
    this.zero = (labels) => counter.inc(labels, 0);
  }

  /** A child; its series shows (at 0) from now on. Call once per label set and keep it. */
  child(labels: Labels): CounterCell {
    const cell = { n: 0 };
    this.cells.push({ labels, cell });
    this.zero(labels);
    return cell;
  }
}

/** One labelled histogram series: counts per bucket (not cumulative; the last is +Inf), sum, count. */
interface HistogramCell {
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram kept in plain arrays and exposed through prom-client's metric interface (what its
 * registry reads from a metric: name, help, type and the sample values), for the same reason.
 */
class HistogramFamily {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly cells: { readonly labels: Labels; readonly cell: HistogramCell }[] = [];

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly upperBounds: readonly number[],
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  child(labels: Labels): HistogramCell {
    const cell = { buckets: new Float64Array(this.upperBounds.length + 1), sum: 0, count: 0 };
    this.cells.push({ labels, cell });
    return cell;
  }

  observe(cell: HistogramCell, value: number): void {
    let i = 0;
    while (i < this.upperBounds.length && value > this.upperBounds[i]!) i++;
    cell.buckets[i]!++;
    cell.sum += value;
    cell.count++;
  }

  async get() {
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const { labels, cell } of this.cells) {
      let cumulative = 0;
      for (let i = 0; i <= this.upperBounds.length; i++) {
        cumulative += cell.buckets[i]!;
        const le = i < this.upperBounds.length ? this.upperBounds[i]! : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels, value: cell.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: cell.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    for (const { cell } of this.cells) {
      cell.buckets.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}

/** The worker's own metric families, registered on its registry. */
function createFamilies(registry: Registry) {
  return {
    outcomes: new CounterFamily(
      registry,
      'upshift_worker_outcomes_total',
      'Target outcomes this worker recorded, by operation type, outcome and reason code.',
      ['operation', 'outcome', 'reason'],
    ),
    calls: new HistogramFamily(
      registry,
      'upshift_worker_platform_call_duration_seconds',
      'Platform API calls: time to the whole answer, by operation type, HTTP method and status (code, class, "timeout" or "error").',
      CALL_BUCKETS_S,
    ),
    claims: new CounterFamily(
      registry,
      'upshift_worker_claims_total',
      'Dispatched targets this worker tried to start, by result: claimed, or declined because the connection (Retry-After) or the campaign was paused, the lease was gone, the delivery was a duplicate, or the target was done.',
      ['operation', 'result'],
    ),
    retries: new CounterFamily(
      registry,
      'upshift_worker_retries_total',
      'Attempts that failed with a transient error and were parked for a retry, by operation type and error code.',
      ['operation', 'code'],
    ),
    conflicts: new CounterFamily(
      registry,
      'upshift_worker_conflicts_total',
      'Stale-checksum answers (Nected) that were re-fetched, re-patched and sent again.',
      ['operation'],
    ),
    pauses: new CounterFamily(
      registry,
      'upshift_worker_retry_after_pauses_total',
      'Retry-After answers (429, or 503 with Retry-After) that paused their connection.',
      ['operation'],
    ),
    pauseSeconds: new CounterFamily(
      registry,
      'upshift_worker_retry_after_pause_seconds_total',
      'Length of the Retry-After pauses asked for (clipped at the maximum).',
      ['operation'],
    ),
    holds: new CounterFamily(
      registry,
      'upshift_worker_pause_holds_total',
      "Calls held by the send gate: a connection's Retry-After pause, or Redis's word that it is not paused being asked for.",
      ['operation'],
    ),
    holdSeconds: new CounterFamily(
      registry,
      'upshift_worker_pause_hold_seconds_total',
      "Time calls waited at the send gate.",
      ['operation'],
    ),
    leasesLost: new CounterFamily(
      registry,
      'upshift_worker_leases_lost_total',
      'Runs aborted because their lease could not be renewed in time (the target is run again).',
      ['operation'],
    ),
  };
}

type Families = ReturnType<typeof createFamilies>;

/**
 * A worker's metrics: its own counters (process-local) and the fleet gauges read from Redis at
 * scrape time. `start` hands the processor a `TargetRun` per target.
 */
export class WorkerMetrics implements MetricsEndpoint {
  readonly registry = new Registry();
  readonly contentType: string = this.registry.contentType;
  private readonly fleet: FleetGauges;
  private readonly tracer: Tracer | undefined;
  private readonly byOperation = new Map<string, OperationMetrics>();
  private readonly families: Families;

  constructor(opts: WorkerMetricsOptions) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
    this.fleet = new FleetGauges(this.registry, opts);
    this.tracer = opts.tracer;
    this.families = createFamilies(this.registry);
  }

  /** The recorder of one target run (tracing off: a shared object, nothing allocated). */
  start(campaignId: string, holder: string, operation: string): TargetRun {
    let m = this.byOperation.get(operation);
    if (!m) this.byOperation.set(operation, (m = new OperationMetrics(this.families, operation)));
    if (!this.tracer) return m;
    const span = this.tracer.startSpan('upshift.target', {
      kind: SpanKind.CONSUMER,
      attributes: { 'upshift.campaign.id': campaignId, 'upshift.operation.type': operation, 'upshift.holder': holder },
    });
    return new TracedRun(m, span);
  }

  async render(): Promise<string> {
    await this.fleet.collect();
    return this.registry.metrics();
  }

  async close(): Promise<void> {
    await this.fleet.close();
  }
}

/** One operation type's children, bound once; also the `TargetRun` when there is no span. */
class OperationMetrics implements TargetRun {
  private readonly claims: Record<ClaimLabel, CounterCell>;
  private readonly conflicts: CounterCell;
  private readonly pauses: CounterCell;
  private readonly pauseSeconds: CounterCell;
  private readonly holds: CounterCell;
  private readonly holdSeconds: CounterCell;
  private readonly leasesLost: CounterCell;
  // Outcome/reason, method/status and retry codes are fixed catalogues, bound on first use.
  private readonly outcomes = new Map<string, CounterCell>();
  private readonly calls = new Map<string, HistogramCell>();
  private readonly retries = new Map<string, CounterCell>();

  constructor(
    private readonly f: Families,
    private readonly operation: string,
  ) {
    this.claims = Object.fromEntries(CLAIM_RESULTS.map((result) => [result, f.claims.child({ operation, result })])) as Record<
      ClaimLabel,
      CounterCell
    >;
    this.conflicts = f.conflicts.child({ operation });
    this.pauses = f.pauses.child({ operation });
    this.pauseSeconds = f.pauseSeconds.child({ operation });
    this.holds = f.holds.child({ operation });
    this.holdSeconds = f.holdSeconds.child({ operation });
    this.leasesLost = f.leasesLost.child({ operation });
  }

  claimed(claim: ClaimResult): void {
    this.claims[claimLabel(claim)].n++;
  }

  async call(method: string, send: () => Promise<HttpResponse>): Promise<HttpResponse> {
    const startedAt = performance.now();
    let status: string;
    try {
      const res = await send();
      status = statusLabel(res.status);
      return res;
    } catch (err) {
      status = errorLabel(err);
      throw err;
    } finally {
      const key = `${method} ${status!}`;
      let cell = this.calls.get(key);
      if (!cell) this.calls.set(key, (cell = this.f.calls.child({ operation: this.operation, method, status: status! })));
      this.f.calls.observe(cell, (performance.now() - startedAt) / 1000);
    }
  }

  heldSince(fromMs: number): void {
    const waitedMs = performance.now() - fromMs;
    // A pause is a timer of at least 1 ms; anything shorter is the cost of looking.
    if (waitedMs < 1) return;
    this.holds.n++;
    this.holdSeconds.n += waitedMs / 1000;
  }

  conflict(): void {
    this.conflicts.n++;
  }

  retried(code: ReasonCode, requeued: boolean): void {
    if (!requeued) return;
    let cell = this.retries.get(code);
    if (!cell) this.retries.set(code, (cell = this.f.retries.child({ operation: this.operation, code })));
    cell.n++;
  }

  throttled(waitMs: number, untilMs: number | null): void {
    if (untilMs === null) return;
    this.pauses.n++;
    this.pauseSeconds.n += waitMs / 1000;
  }

  settled(outcome: RecordedOutcome, reason: ReasonCode, recorded: boolean): void {
    // Counted only where the status hash counts it too, so the two always agree.
    if (!recorded) return;
    const key = `${outcome} ${reason}`;
    let cell = this.outcomes.get(key);
    if (!cell) this.outcomes.set(key, (cell = this.f.outcomes.child({ operation: this.operation, outcome, reason })));
    cell.n++;
  }

  leaseLost(): void {
    this.leasesLost.n++;
  }

  end(): void {}
}

/** A run with a span: the same counters, and what happened as the span's attributes and events. */
class TracedRun implements TargetRun {
  constructor(
    private readonly m: OperationMetrics,
    private readonly span: Span,
  ) {}

  claimed(claim: ClaimResult): void {
    this.m.claimed(claim);
    this.span.setAttribute('upshift.claim', claimLabel(claim));
    if (claim.kind === 'claimed') this.span.setAttribute('upshift.attempt', claim.attemptsMade + 1);
  }

  async call(method: string, send: () => Promise<HttpResponse>): Promise<HttpResponse> {
    try {
      const res = await this.m.call(method, send);
      this.span.addEvent('platform.call', { 'http.request.method': method, 'http.response.status_code': res.status });
      return res;
    } catch (err) {
      this.span.addEvent('platform.call', { 'http.request.method': method, 'error.type': errorLabel(err) });
      throw err;
    }
  }

  heldSince(fromMs: number): void {
    this.m.heldSince(fromMs);
  }

  conflict(): void {
    this.m.conflict();
    this.span.addEvent('checksum.conflict');
  }

  retried(code: ReasonCode, requeued: boolean): void {
    this.m.retried(code, requeued);
    this.span.setAttributes({ 'upshift.decision': requeued ? 'retry' : 'lease-lost', 'upshift.reason': code });
  }

  throttled(waitMs: number, untilMs: number | null): void {
    this.m.throttled(waitMs, untilMs);
    this.span.setAttributes({ 'upshift.decision': untilMs === null ? 'lease-lost' : 'throttle', 'upshift.retry_after_ms': waitMs });
  }

  settled(outcome: RecordedOutcome, reason: ReasonCode, recorded: boolean): void {
    this.m.settled(outcome, reason, recorded);
    this.span.setAttributes({ 'upshift.decision': 'finish', 'upshift.outcome': outcome, 'upshift.reason': reason, 'upshift.recorded': recorded });
    if (outcome === 'failed' || outcome === 'would-fail') this.span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
  }

  leaseLost(): void {
    this.m.leaseLost();
    this.span.setAttribute('upshift.decision', 'lease-lost');
  }

  end(): void {
    this.span.end();
  }
}

export interface MetricsServer {
  /** The port bound (useful when 0 asked for a free one). */
  readonly port: number;
  close(): Promise<void>;
}

/** Where /metrics listens unless told otherwise: loopback, so nothing off the machine reads it. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/**
 * Serves `GET /metrics` and `GET /healthz` (200 while `healthy()`, else 503) on `host`: loopback
 * by default; `0.0.0.0` (or an interface's address) lets Prometheus in another container scrape
 * it. node:http is enough for two routes.
 */
export async function serveMetrics(
  endpoint: MetricsEndpoint,
  port: number,
  healthy: () => boolean,
  host: string = DEFAULT_METRICS_HOST,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(ok ? 'ok\n' : 'not running\n');
      return;
    }
    if (path === '/metrics') {
      endpoint.render().then(
        (text) => res.writeHead(200, { 'content-type': endpoint.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('GET /metrics or /healthz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection would otherwise hold the close open.
        server.closeAllConnections();
      }),
  };
}
