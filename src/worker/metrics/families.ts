import { Counter, Histogram, type Registry } from 'prom-client';
import { classifyError, type ClaimResult } from '../../shared/index.js';

/** Platform latency buckets, in seconds: from a LAN sandbox to a slow SaaS near its timeout. */
const CALL_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Statuses reported as themselves; any other answer is reported by class (`4xx`), so a platform
 * cannot grow the label set beyond a known bound.
 */
const NAMED_STATUSES = new Set([200, 201, 202, 204, 400, 401, 403, 404, 408, 409, 412, 422, 429, 500, 502, 503, 504]);

export function statusLabel(status: number): string {
  if (NAMED_STATUSES.has(status)) return String(status);
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}

/** A call without an answer: timed out, or failed (reset, refused, aborted). */
export function errorLabel(err: unknown): string {
  return classifyError(err).code === 'TIMEOUT' ? 'timeout' : 'error';
}

export const CLAIM_RESULTS = ['claimed', 'connection_paused', 'campaign_paused', 'lost', 'duplicate', 'done'] as const;
export type ClaimLabel = (typeof CLAIM_RESULTS)[number];

export function claimLabel(claim: ClaimResult): ClaimLabel {
  if (claim.kind === 'paused') return claim.untilMs > 0 ? 'connection_paused' : 'campaign_paused';
  return claim.kind;
}

type CallLabel = 'operation' | 'method' | 'status';

/** One label set's count on the hot path: a plain number, added to its family at scrape. */
export class Tally {
  n = 0;
  inc(by = 1): void {
    this.n += by;
  }
}

/**
 * A prom-client Counter whose label sets are counted as `Tally`s and summed into it when it is
 * collected (every scrape). prom-client's own child validates and hashes its labels on every
 * `inc`, a few µs that showed as 2% of a worker's CPU per target in `npm run bench`; a tally is
 * one addition, and the exposition is prom-client's, unchanged.
 */
export class TallyCounter<L extends string> {
  private readonly tallies: { readonly labels: Partial<Record<L, string>>; readonly tally: Tally }[] = [];
  readonly family: Counter<L>;

  constructor(name: string, help: string, labelNames: readonly L[], registers: Registry[]) {
    const tallies = this.tallies;
    this.family = new Counter<L>({
      name,
      help,
      labelNames,
      registers,
      collect() {
        for (const { labels, tally } of tallies) {
          if (tally.n === 0) continue;
          this.inc(labels, tally.n);
          tally.n = 0;
        }
      },
    });
  }

  /** The label set's tally; its series shows (at 0) from now on, before its first count. */
  tally(labels: Partial<Record<L, string>>): Tally {
    const tally = new Tally();
    this.tallies.push({ labels, tally });
    this.family.inc(labels, 0);
    return tally;
  }
}

/** The worker's own metric families (docs/OBSERVABILITY.md), registered on its registry. */
export function createFamilies(registry: Registry) {
  const registers = [registry];
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new TallyCounter<L>(name, help, labelNames, registers);
  return {
    outcomes: counter(
      'upshift_worker_outcomes_total',
      'Target outcomes this worker recorded, by operation type, outcome and reason code.',
      ['operation', 'outcome', 'reason'],
    ),
    calls: new Histogram<CallLabel>({
      name: 'upshift_worker_platform_call_duration_seconds',
      help: 'Platform API calls: time to the whole answer, by operation type, HTTP method and status (code, class, "timeout" or "error").',
      labelNames: ['operation', 'method', 'status'],
      buckets: CALL_BUCKETS_S,
      registers,
    }),
    claims: counter(
      'upshift_worker_claims_total',
      'Dispatched targets this worker tried to start, by result: claimed, or declined because the connection (Retry-After) or the campaign was paused, the lease was gone, the delivery was a duplicate, or the target was done.',
      ['operation', 'result'],
    ),
    retries: counter(
      'upshift_worker_retries_total',
      'Attempts that failed with a transient error and were parked for a retry, by operation type and error code.',
      ['operation', 'code'],
    ),
    conflicts: counter(
      'upshift_worker_conflicts_total',
      'Stale-checksum answers (Nected) that were re-fetched, re-patched and sent again.',
      ['operation'],
    ),
    pauses: counter(
      'upshift_worker_retry_after_pauses_total',
      'Retry-After answers (429, or 503 with Retry-After) that paused their connection.',
      ['operation'],
    ),
    pauseSeconds: counter(
      'upshift_worker_retry_after_pause_seconds_total',
      'Length of the Retry-After pauses asked for (clipped at the maximum).',
      ['operation'],
    ),
    holds: counter(
      'upshift_worker_pause_holds_total',
      "Calls held by the send gate: a connection's Retry-After pause, or Redis's word that it is not paused being asked for.",
      ['operation'],
    ),
    holdSeconds: counter('upshift_worker_pause_hold_seconds_total', 'Time calls waited at the send gate.', ['operation']),
    notifications: counter(
      'upshift_worker_notifications_total',
      'Webhook delivery attempts this worker made, by outcome: delivered; retried (the attempt failed and another is due after a backoff); failed (given up: the egress guard refused the address, or the delivery passed its 24 h).',
      ['outcome'],
    ),
    leasesLost: counter(
      'upshift_worker_leases_lost_total',
      'Runs aborted because their lease could not be renewed in time (the target is run again).',
      ['operation'],
    ),
    giveBacks: counter(
      'upshift_worker_give_backs_total',
      "Runs that gave their target back unsent while a Retry-After pause held their call, their adaptive key holding more slots than its cut figure (the target runs again after the pause).",
      ['operation'],
    ),
  };
}

export type Families = ReturnType<typeof createFamilies>;
