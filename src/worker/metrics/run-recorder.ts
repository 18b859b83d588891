import { SpanStatusCode, type Span } from '@opentelemetry/api';
import type { Histogram } from 'prom-client';
import type { ClaimResult, HttpResponse, ReasonCode, RecordedOutcome } from '../../shared/index.js';
import { CLAIM_RESULTS, claimLabel, errorLabel, statusLabel, type ClaimLabel, type Families, type Tally } from './families.js';

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
  /** A Retry-After pause held a call and the run gave its target back (its key was over its cut adaptive figure). */
  gaveBack(): void;
  end(): void;
}

type CounterChild = Tally;
type CallChild = Histogram.Internal<'operation' | 'method' | 'status'>;


/** One operation type's children, bound once; also the `TargetRun` when there is no span. */
export class OperationRun implements TargetRun {
  private readonly claims: Record<ClaimLabel, CounterChild>;
  private readonly conflicts: CounterChild;
  private readonly pauses: CounterChild;
  private readonly pauseSeconds: CounterChild;
  private readonly holds: CounterChild;
  private readonly holdSeconds: CounterChild;
  private readonly leasesLost: CounterChild;
  private readonly giveBacks: CounterChild;
  // Outcome/reason, method/status and retry codes are fixed catalogues, bound on first use.
  private readonly outcomes = new Map<string, CounterChild>();
  private readonly calls = new Map<string, CallChild>();
  private readonly retries = new Map<string, CounterChild>();

  constructor(
    private readonly f: Families,
    private readonly operation: string,
  ) {
    this.claims = Object.fromEntries(CLAIM_RESULTS.map((result) => [result, f.claims.tally({ operation, result })])) as Record<
      ClaimLabel,
      CounterChild
    >;
    this.conflicts = f.conflicts.tally({ operation });
    this.pauses = f.pauses.tally({ operation });
    this.pauseSeconds = f.pauseSeconds.tally({ operation });
    this.holds = f.holds.tally({ operation });
    this.holdSeconds = f.holdSeconds.tally({ operation });
    this.leasesLost = f.leasesLost.tally({ operation });
    this.giveBacks = f.giveBacks.tally({ operation });
  }

  claimed(claim: ClaimResult): void {
    this.claims[claimLabel(claim)].inc();
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
      let child = this.calls.get(key);
      if (!child) this.calls.set(key, (child = this.f.calls.labels({ operation: this.operation, method, status: status! })));
      child.observe((performance.now() - startedAt) / 1000);
    }
  }

  heldSince(fromMs: number): void {
    const waitedMs = performance.now() - fromMs;
    // A pause is a timer of at least 1 ms; anything shorter is the cost of looking.
    if (waitedMs < 1) return;
    this.holds.inc();
    this.holdSeconds.inc(waitedMs / 1000);
  }

  conflict(): void {
    this.conflicts.inc();
  }

  retried(code: ReasonCode, requeued: boolean): void {
    if (!requeued) return;
    let child = this.retries.get(code);
    if (!child) this.retries.set(code, (child = this.f.retries.tally({ operation: this.operation, code })));
    child.inc();
  }

  throttled(waitMs: number, untilMs: number | null): void {
    if (untilMs === null) return;
    this.pauses.inc();
    this.pauseSeconds.inc(waitMs / 1000);
  }

  settled(outcome: RecordedOutcome, reason: ReasonCode, recorded: boolean): void {
    // Counted only where the status hash counts it too, so the two always agree.
    if (!recorded) return;
    const key = `${outcome} ${reason}`;
    let child = this.outcomes.get(key);
    if (!child) this.outcomes.set(key, (child = this.f.outcomes.tally({ operation: this.operation, outcome, reason })));
    child.inc();
  }

  leaseLost(): void {
    this.leasesLost.inc();
  }

  gaveBack(): void {
    this.giveBacks.inc();
  }

  end(): void {}
}

/** A run with a span: the same counters, and what happened as the span's attributes and events. */
export class TracedRun implements TargetRun {
  constructor(
    private readonly m: OperationRun,
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

  gaveBack(): void {
    this.m.gaveBack();
    this.span.setAttribute('upshift.decision', 'give-back');
  }

  end(): void {
    this.span.end();
  }
}
