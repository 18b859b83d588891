import type { Queue } from 'bullmq';
import { DEFAULTS, encodeJob, jobOfPick, type DispatchResult, type Logger, type Scripts, type TargetJobData } from '../shared/index.js';

/**
 * Moves runnable targets from the scheduler into BullMQ. It runs when something may have made
 * room: a target finished here, a campaign started (pub/sub), a lease expiry or a delay fell
 * due (one timer, set to what the dispatch script says comes next). Triggers while a step runs
 * coalesce into one more step, so under load one Redis call dispatches many targets.
 */
export class Dispatcher {
  private running = false;
  private again = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  /** Zones whose refresh failed, retried together after `retryMs` (doubling), not by dispatching. */
  private readonly failed = new Map<string, DispatchResult['staleWindows'][number]>();
  private retryMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly scripts: Scripts,
    private readonly queue: Queue<TargetJobData>,
    private readonly log: Logger,
    private readonly batch: number,
    private readonly leaseMs: number,
    /** Computes and stores maintenance-window zones a step found passed (window-store.ts `refreshWindows`). */
    private readonly refreshWindows?: (stale: DispatchResult['staleWindows'], redisNowMs: number) => Promise<void>,
  ) {}

  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.retryTimer);
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        const r = await this.scripts.dispatch(this.batch, this.leaseMs);
        await this.deliver(r);
      } while (this.again && !this.stopped);
    } catch (err) {
      // Nothing is lost: a target picked but not added keeps its lease, which expires and
      // requeues it. Try again shortly.
      this.log.warn({ err: (err as Error).message }, 'dispatch step failed; retrying');
      this.wakeAt(Math.min(1000, this.leaseMs));
    } finally {
      this.running = false;
    }
  }

  /**
   * Hands a dispatch step's picks to BullMQ and sets the timer for what falls due next. Also
   * used with the step that `finish` runs: the processor awaits it, so the next job is in
   * BullMQ before BullMQ asks for one, and the worker takes it without a wake-up round trip.
   */
  async deliver(r: DispatchResult): Promise<void> {
    if (r.picks.length > 0) {
      await this.queue.addBulk(
        r.picks.map((p) => ({
          name: 'target',
          data: encodeJob(jobOfPick(p)),
          // Outcomes live in the campaign's hash; a failed job (a worker bug) stays for a look.
          opts: { jobId: p.holder, removeOnComplete: true, removeOnFail: { count: DEFAULTS.failedJobsKept } },
        })),
      );
    }
    if (r.reclaimed > 0) this.log.info({ reclaimed: r.reclaimed }, 'expired leases reclaimed; targets requeued');
    if (r.nextWakeMs !== null) this.wakeAt(r.nextWakeMs - r.nowMs);
    if (r.staleWindows.length > 0) await this.refresh(r.staleWindows, r.nowMs);
    if (r.picks.length === this.batch) this.trigger();
  }

  /**
   * Stores the next interval of zones a step found passed. Their groups wait (`:winwait`) until
   * `setWindows` makes them ready, so a step follows a refresh that took; one that failed (a zone
   * this worker's ICU lacks, a spec without its schedule) is retried with backoff, never by
   * dispatching again and again.
   */
  private async refresh(stale: DispatchResult['staleWindows'], redisNowMs: number): Promise<void> {
    if (this.refreshWindows === undefined) return;
    if (this.retryTimer !== undefined) {
      for (const s of stale) this.failed.set(`${s.campaignId}\t${s.zone}`, s);
      return;
    }
    try {
      await this.refreshWindows(stale, redisNowMs);
      this.retryMs = 0;
      this.trigger();
    } catch (err) {
      for (const s of stale) this.failed.set(`${s.campaignId}\t${s.zone}`, s);
      this.retryMs = this.retryMs === 0 ? DEFAULTS.windowRefreshRetryMs : Math.min(this.retryMs * 2, DEFAULTS.windowRefreshRetryMaxMs);
      this.log.error({ err: (err as Error).message, zones: [...this.failed.keys()], retryInMs: this.retryMs }, 'maintenance window refresh failed; its groups wait');
      if (this.stopped) return;
      // Redis's clock at the retry: the step's, moved on by the local time since.
      const localAt = Date.now();
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        const again = [...this.failed.values()];
        this.failed.clear();
        void this.refresh(again, redisNowMs + (Date.now() - localAt));
      }, this.retryMs);
      this.retryTimer.unref();
      // Campaigns stored before the failure have ready groups. The failed zones' groups are not
      // due again (only their recheck), so this step does not bring the refresh back.
      this.trigger();
    }
  }

  private wakeAt(delayMs: number): void {
    if (this.stopped) return;
    const at = Date.now() + Math.max(0, delayMs) + 1;
    if (at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timerAt = Infinity;
      this.trigger();
    }, at - Date.now());
    this.timer.unref();
  }
}
