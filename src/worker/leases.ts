import { randomBytes } from 'node:crypto';
import { LightSignal, type AbortSignalLike, type Logger, type Scripts } from '../shared/index.js';

interface Held {
  readonly token: string;
  readonly signal: LightSignal;
  /** `performance.now()` past which the run is aborted, unless a renewal moves it first. */
  deadline: number;
}

/**
 * The leases of the targets this worker is running. One heartbeat renews all of them (and the
 * worker's registration) every third of the lease. A run whose lease cannot be renewed is
 * aborted before the lease could expire on the server, so once Redis may hand its slot to
 * someone else, the run's platform call is already cut off: a slot is never used twice.
 * The deadlines share one timer, armed at the earliest: a timer per run, set at its claim and
 * set again at every renewal, cost a timer's allocation and two heap operations per target.
 */
export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  private readonly timer: NodeJS.Timeout;
  private renewing: Promise<void> | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** When `deadlineTimer` fires (Infinity: not armed). */
  private deadlineAt = Infinity;
  private readonly tokenBase = `${randomBytes(6).toString('hex')}.`;
  private tokenSeq = 0;
  /** Cut-off before the server-side expiry, for clock drift and the renewal's own round trip. */
  private readonly marginMs: number;

  constructor(
    private readonly scripts: Scripts,
    private readonly log: Logger,
    readonly workerId: string,
    private readonly concurrency: number,
    private readonly leaseMs: number,
  ) {
    this.marginMs = Math.min(1000, Math.floor(leaseMs / 10));
    this.timer = setInterval(() => void this.renew(), Math.max(1, Math.floor(leaseMs / 3)));
    this.timer.unref();
  }

  /** Registers the worker (its concurrency opens the dispatch window). */
  async register(): Promise<void> {
    await this.renew();
  }

  /**
   * A run token, unique across every worker (a random per-process part and a counter): it tells
   * two deliveries of one holder apart, and need not be unguessable.
   */
  newToken(): string {
    return `${this.tokenBase}${(++this.tokenSeq).toString(36)}`;
  }

  /** Starts tracking a claimed run; its signal aborts when the lease is lost. */
  hold(holder: string, token: string, claimedAt: number): AbortSignalLike {
    const signal = new LightSignal();
    const deadline = claimedAt + this.leaseMs - this.marginMs;
    this.held.set(holder, { token, signal, deadline });
    if (deadline < this.deadlineAt) this.armDeadline(deadline);
    return signal;
  }

  /**
   * The run with this token ended. Only its own entry goes: a run aborted for a lost lease may
   * still be unwinding when its holder, requeued, is claimed here again under a new token, whose
   * entry must stay renewed and under its deadline. Its deadline stays armed if it was the
   * earliest: the timer then finds it gone.
   */
  drop(holder: string, token: string): void {
    if (this.held.get(holder)?.token === token) this.held.delete(holder);
  }

  /** One heartbeat; concurrent callers share it. */
  renew(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /**
   * Deregisters the worker; its remaining leases (none after a graceful close) expire. Runs still
   * going (a shutdown that timed out) are aborted: nothing renews their leases any more.
   */
  async leave(): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.deadlineTimer);
    this.deadlineAt = Infinity;
    for (const h of this.held.values()) h.signal.abort(new Error('worker leaving'));
    await this.scripts.renew(this.leaseMs, this.workerId, 0, []);
  }

  private armDeadline(at: number): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineAt = at;
    this.deadlineTimer = setTimeout(() => this.expire(), Math.max(0, at - performance.now()));
    this.deadlineTimer.unref();
  }

  /** Aborts every run past its deadline, and arms the timer at the earliest one left. */
  private expire(): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
    this.deadlineAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [holder, h] of this.held) {
      if (h.signal.aborted) continue;
      if (h.deadline <= now) {
        this.log.warn({ holder }, 'lease could not be renewed in time; aborting the run');
        h.signal.abort(new Error('lease lost'));
      } else if (h.deadline < next) {
        next = h.deadline;
      }
    }
    if (next < Infinity) this.armDeadline(next);
  }

  private async renewOnce(): Promise<void> {
    const sentAt = performance.now();
    const snapshot = [...this.held].map(([holder, h]) => [holder, h.token] as const);
    let lost: string[];
    try {
      lost = await this.scripts.renew(this.leaseMs, this.workerId, this.concurrency, snapshot);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'lease renewal failed; runs abort if it keeps failing');
      return;
    }
    const lostSet = new Set(lost);
    for (const [holder, token] of snapshot) {
      const h = this.held.get(holder);
      if (!h || h.token !== token) continue;
      if (lostSet.has(holder)) h.signal.abort(new Error('lease lost'));
      else h.deadline = sentAt + this.leaseMs - this.marginMs;
    }
    // The renewed deadlines moved later: the timer moves to the earliest one now.
    this.expire();
  }
}
