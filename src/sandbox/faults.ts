/**
 * Seeded fault decisions. Everything random in the sandbox comes from here, so a run with the
 * same seed and the same request order reproduces the same faults (benchmarks, flaky-test hunts).
 */

/** mulberry32: a tiny, fast 32-bit PRNG; good enough for fault dice, and fully reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type TransportFault = { kind: 'reset' } | { kind: 'throttle' } | { kind: 'fail'; status: 500 | 502 | 503 };

const FAIL_STATUSES = [500, 502, 503] as const;

export interface FaultRates {
  resetRate: number;
  throttleRate: number;
  failRate: number;
  slowRate: number;
}

export class FaultInjector {
  /**
   * Four independent streams: transport faults are drawn for every platform request, slow
   * answers only for requests that got past the transport faults, dropped writes only for writes
   * that got past them, conflicts only for Nected PATCHes. Separate streams keep the
   * transport-fault sequence the same whether or not a run contains PATCHes, slow answers or
   * dropped writes.
   */
  private transport!: () => number;
  private conflicts!: () => number;
  private slow!: () => number;
  private drops!: () => number;

  constructor(private readonly seed: number) {
    this.reseed();
  }

  /** Back to the first draw of the seed (used by `reset()`, so each test starts alike). */
  reseed(): void {
    this.transport = mulberry32(this.seed);
    this.conflicts = mulberry32(this.seed ^ 0x9e3779b9);
    this.slow = mulberry32(this.seed ^ 0x85ebca6b);
    this.drops = mulberry32(this.seed ^ 0xc2b2ae35);
  }

  /**
   * What the network or a proxy in front of the platform would do to this request: reset the
   * connection first (it never reaches the rate limiter), then throttle (a rate limiter answers
   * before the backend is asked), then fail. A rate of 0 draws nothing, so enabling one kind of
   * fault does not shift the others' sequence when it is off.
   */
  transportFault(rates: FaultRates): TransportFault | null {
    if (rates.resetRate > 0 && this.transport() < rates.resetRate) return { kind: 'reset' };
    if (rates.throttleRate > 0 && this.transport() < rates.throttleRate) return { kind: 'throttle' };
    if (rates.failRate > 0 && this.transport() < rates.failRate) {
      const status = FAIL_STATUSES[Math.floor(this.transport() * FAIL_STATUSES.length)] ?? 500;
      return { kind: 'fail', status };
    }
    return null;
  }

  /**
   * Whether the answer to a request that reached the platform (no transport fault) is held back
   * by `slowMs`. Drawn once per such request, when its answer is decided, so the sequence
   * follows the order requests are answered in, not the order their delays end.
   */
  slowAnswer(rates: FaultRates): boolean {
    return rates.slowRate > 0 && this.slow() < rates.slowRate;
  }

  /**
   * Whether a write that reached the platform (no transport fault) loses its state change, at
   * `dropWriteRate`. Drawn once per such write, before its handler runs, whatever it answers.
   */
  dropWrite(dropWriteRate: number): boolean {
    return dropWriteRate > 0 && this.drops() < dropWriteRate;
  }

  /** Whether a concurrent edit lands just before this write's checksum check, at `conflictRate`. */
  concurrentEdit(conflictRate: number): boolean {
    return conflictRate > 0 && this.conflicts() < conflictRate;
  }
}
