/** Counters a test or benchmark reads back with `sandbox.stats()` or `GET /__sandbox/stats`. */
export interface SandboxStats {
  /** Platform requests received (never `/__sandbox/*`). */
  requests: number;
  /** Platform answers by status code: `{ "200": n, ... }`. */
  byStatus: Record<string, number>;
  /**
   * Injected faults: answered 5xx (`failed`), answered 429 (`throttled`), simulated concurrent
   * Nected edits (`conflicts`), connections reset without an answer (`resets`), answers held
   * back by `slowMs` (`slow`, counted when decided, whether or not the client waited for them),
   * writes answered 2xx whose state change was not kept (`droppedWrites`, `dropWriteRate`).
   */
  faults: { failed: number; throttled: number; conflicts: number; resets: number; slow: number; droppedWrites: number };
  /** Platform requests between arrival and the end of their answer (latency included). */
  inFlight: number;
  maxInFlight: number;
  /** Requests per target key (`alloy:<workflowId>:<userId>`, `conductor:exec:<id>`, ...), faulted ones included. */
  requestsByTarget: Record<string, number>;
  /** Successful state-changing calls per target key (a dropped write is not one). */
  appliedByTarget: Record<string, number>;
  /**
   * Highest concurrency per limit key: the first capture group of the `limitKeyPattern` option
   * matched against each request's target key (empty unless that option is set). A request counts
   * from the moment it is routed until its answer has ended (latency included).
   */
  maxInFlightByKey: Record<string, number>;
  /** Requests answered 429 because more than twice the `capacity` option were in flight on their key. */
  overCapacity: number;
}

/** The scalar part of `SandboxStats`, read without a copy of the per-target maps. */
export type SandboxCounters = Pick<SandboxStats, 'requests' | 'inFlight' | 'maxInFlight' | 'overCapacity'>;

const bump = (counts: Record<string, number>, key: string, by = 1): number => (counts[key] = (counts[key] ?? 0) + by);

export class StatsRecorder {
  private s: SandboxStats = emptyStats();
  /** Live concurrency per limit key; survives `reset()` like `inFlight` (those requests are still open). */
  private inFlightByKey = new Map<string, number>();

  /** A platform request arrived. Returns the function to call once its answer has ended. */
  begin(): () => void {
    this.s.requests += 1;
    this.s.inFlight += 1;
    this.s.maxInFlight = Math.max(this.s.maxInFlight, this.s.inFlight);
    return once(() => {
      this.s.inFlight -= 1;
    });
  }

  /**
   * A request in flight turned out to belong to `limitKey` (known once it is routed). Returns the
   * function to call once its answer has ended.
   */
  beginKey(limitKey: string): () => void {
    const now = (this.inFlightByKey.get(limitKey) ?? 0) + 1;
    this.inFlightByKey.set(limitKey, now);
    this.s.maxInFlightByKey[limitKey] = Math.max(this.s.maxInFlightByKey[limitKey] ?? 0, now);
    return once(() => {
      const left = (this.inFlightByKey.get(limitKey) ?? 1) - 1;
      if (left === 0) this.inFlightByKey.delete(limitKey);
      else this.inFlightByKey.set(limitKey, left);
    });
  }

  /** Live concurrency of `limitKey`, or of the whole sandbox when the request has no limit key. */
  load(limitKey: string | undefined): number {
    return limitKey === undefined ? this.s.inFlight : (this.inFlightByKey.get(limitKey) ?? 0);
  }

  overCapacity(): void {
    this.s.overCapacity += 1;
  }

  target(key: string): void {
    bump(this.s.requestsByTarget, key);
  }

  applied(key: string): void {
    bump(this.s.appliedByTarget, key);
  }

  status(code: number): void {
    bump(this.s.byStatus, String(code));
  }

  throttled(): void {
    this.s.faults.throttled += 1;
  }

  failed(): void {
    this.s.faults.failed += 1;
  }

  conflict(): number {
    return (this.s.faults.conflicts += 1);
  }

  connectionReset(): void {
    this.s.faults.resets += 1;
  }

  slowed(): void {
    this.s.faults.slow += 1;
  }

  droppedWrite(): void {
    this.s.faults.droppedWrites += 1;
  }

  /** Zeroes the counters; requests still open stay counted in `inFlight` so it never goes negative. */
  reset(): void {
    const inFlight = this.s.inFlight;
    this.s = emptyStats();
    this.s.inFlight = inFlight;
    this.s.maxInFlight = inFlight;
    for (const [key, n] of this.inFlightByKey) this.s.maxInFlightByKey[key] = n;
  }

  /** Platform requests so far, without copying the rest. */
  snapshotRequests(): number {
    return this.s.requests;
  }

  counters(): SandboxCounters {
    const { requests, inFlight, maxInFlight, overCapacity } = this.s;
    return { requests, inFlight, maxInFlight, overCapacity };
  }

  snapshot(): SandboxStats {
    return structuredClone(this.s);
  }
}

/** Wraps `fn` to run at most once: 'close' can follow 'finish', and an end must count once. */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

/** Prototype-less maps: keys come from requests, and `counts['__proto__'] = 1` must count, not misfire. */
const counts = (): Record<string, number> => Object.create(null) as Record<string, number>;

function emptyStats(): SandboxStats {
  return {
    requests: 0,
    byStatus: counts(),
    faults: { failed: 0, throttled: 0, conflicts: 0, resets: 0, slow: 0, droppedWrites: 0 },
    inFlight: 0,
    maxInFlight: 0,
    requestsByTarget: counts(),
    appliedByTarget: counts(),
    maxInFlightByKey: counts(),
    overCapacity: 0,
  };
}
