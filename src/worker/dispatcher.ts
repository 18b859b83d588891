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
  /** Window refreshes in a row with nothing else done: a guard against a refresh that does not take. */
  private refreshes = 0;

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
    if (r.staleWindows.length > 0 && this.refreshWindows !== undefined) {
      // The step parked those zones' groups as due now: once their next interval is stored, the
      // next step parks them at their opening (or runs them), so the refresh is followed by one.
      try {
        await this.refreshWindows(r.staleWindows, r.nowMs);
        if (++this.refreshes <= 3) this.trigger();
        else this.wakeAt(Math.min(1000, this.leaseMs));
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'maintenance window refresh failed; retrying');
        this.wakeAt(Math.min(1000, this.leaseMs));
      }
    } else {
      this.refreshes = 0;
    }
    if (r.picks.length === this.batch) this.trigger();
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
