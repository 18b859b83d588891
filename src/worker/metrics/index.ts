import { SpanKind, type Tracer } from '@opentelemetry/api';
import type { Registry } from 'prom-client';
import { createServedMetrics, type ServedMetrics, type ServedMetricsOptions } from '../../shared/index.js';
import { createFamilies, type Families, type Tally } from './families.js';

export type NotificationOutcome = 'delivered' | 'retried' | 'failed';
import { OperationRun, TracedRun, type TargetRun } from './run-recorder.js';

export { DEFAULT_METRICS_HOST, serveMetrics, type MetricsServer } from './server.js';
export type { TargetRun } from './run-recorder.js';

export interface WorkerMetricsOptions extends ServedMetricsOptions {
  /** Spans for each target run; undefined when tracing is off. */
  readonly tracer?: Tracer | undefined;
}

/**
 * A worker's metrics: its own counters (process-local, families.ts) and the fleet gauges read
 * from Redis at scrape time (shared/metrics.ts). `start` hands the processor a `TargetRun` per
 * target. Node's process metrics are on when `processMetrics` is (served over HTTP).
 */
export class WorkerMetrics implements ServedMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  private readonly served: ServedMetrics;
  private readonly tracer: Tracer | undefined;
  private readonly byOperation = new Map<string, OperationRun>();
  private readonly families: Families;
  private readonly notifications: Record<NotificationOutcome, Tally>;

  constructor(opts: WorkerMetricsOptions) {
    this.served = createServedMetrics(opts);
    this.registry = this.served.registry;
    this.contentType = this.served.contentType;
    this.tracer = opts.tracer;
    this.families = createFamilies(this.registry);
    const n = this.families.notifications;
    this.notifications = { delivered: n.tally({ outcome: 'delivered' }), retried: n.tally({ outcome: 'retried' }), failed: n.tally({ outcome: 'failed' }) };
  }

  /** Counts one webhook delivery attempt by what became of it (worker/notifier.ts). */
  notified(outcome: NotificationOutcome): void {
    this.notifications[outcome].inc();
  }

  /** The recorder of one target run (tracing off: a shared object, nothing allocated). */
  start(campaignId: string, holder: string, operation: string): TargetRun {
    let m = this.byOperation.get(operation);
    if (!m) this.byOperation.set(operation, (m = new OperationRun(this.families, operation)));
    if (!this.tracer) return m;
    const span = this.tracer.startSpan('upshift.target', {
      kind: SpanKind.CONSUMER,
      attributes: { 'upshift.campaign.id': campaignId, 'upshift.operation.type': operation, 'upshift.holder': holder },
    });
    return new TracedRun(m, span);
  }

  render(): Promise<string> {
    return this.served.render();
  }

  close(): Promise<void> {
    return this.served.close();
  }
}
