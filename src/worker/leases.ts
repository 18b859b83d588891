import { randomBytes } from 'node:crypto';
import type { Logger, Scripts } from '../shared/index.js';

interface Held {
  readonly token: string;
  readonly abort: AbortController;
  deadline: NodeJS.Timeout;
}

/**
 * The leases of the targets this worker is running. One heartbeat renews all of them (and the
 * worker's registration) every third of the lease. A run whose lease cannot be renewed is
 * aborted before the lease could expire on the server, so once Redis may hand its slot to
 * someone else, the run's platform call is already cut off: a slot is never used twice.
 */
export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  private readonly timer: NodeJS.Timeout;
  private renewing: Promise<void> | undefined;
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
  hold(holder: string, token: string, claimedAt: number): AbortSignal {
    const abort = new AbortController();
    const entry: Held = { token, abort, deadline: this.deadlineTimer(holder, abort, claimedAt) };
    this.held.set(holder, entry);
    return abort.signal;
  }

  drop(holder: string): void {
    const h = this.held.get(holder);
    if (!h) return;
    clearTimeout(h.deadline);
    this.held.delete(holder);
  }

  /** One heartbeat; concurrent callers share it. */
  renew(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  /** Deregisters the worker; its remaining leases (none after a graceful close) expire. */
  async leave(): Promise<void> {
    clearInterval(this.timer);
    for (const h of this.held.values()) clearTimeout(h.deadline);
    await this.scripts.renew(this.leaseMs, this.workerId, 0, []);
  }

  private deadlineTimer(holder: string, abort: AbortController, sentAt: number): NodeJS.Timeout {
    const t = setTimeout(
      () => {
        this.log.warn({ holder }, 'lease could not be renewed in time; aborting the run');
        abort.abort(new Error('lease lost'));
      },
      Math.max(0, sentAt + this.leaseMs - this.marginMs - performance.now()),
    );
    t.unref();
    return t;
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
      clearTimeout(h.deadline);
      if (lostSet.has(holder)) {
        h.abort.abort(new Error('lease lost'));
      } else {
        h.deadline = this.deadlineTimer(holder, h.abort, sentAt);
      }
    }
  }
}
