import type { DispatchResult, FinishedRun, FinishRun, Logger, Scripts } from '../shared/index.js';
import type { Dispatcher } from './dispatcher.js';

/** What `finish` answered one run, and when the call that claimed its next target was sent. */
export type Finished = FinishedRun & { readonly sentAt: number };

/**
 * Group commit of run ends. A run that ends while this worker's `finishMany` calls are on their
 * way (at most `maxCalls`) waits for one to return, then goes with every other run that ended
 * meanwhile in one call (finishMany-1.lua): one script call, one round trip and one dispatch step for the group
 * instead of one each. Nothing waits on a timer: an idle worker's run is sent at once, and under
 * load the group grows with the load, up to `maxRuns`.
 *
 * What a run's wait costs at a crash: its answer from the platform is held here for at most one
 * call's round trip before Redis has it, as a run's own `finish` call is on the wire for one;
 * a SIGKILL in between repeats the run, as one during a `finish` call would.
 */
export class Finisher {
  private queue: { run: FinishRun; resolve: (f: Finished) => void; reject: (err: unknown) => void }[] = [];
  private inFlight = 0;

  constructor(
    private readonly scripts: Pick<Scripts, 'finishMany'>,
    private readonly dispatcher: Pick<Dispatcher, 'deliver'>,
    private readonly channel: string,
    private readonly maxPicks: number,
    private readonly leaseMs: number,
    private readonly maxRuns: number,
    private readonly log: Logger,
    /** Calls on their way at once: with two, a run waits for half a round trip, not one. */
    private readonly maxCalls = 1,
  ) {
    // Zero would send empty groups forever (or never send): at least one of each.
    this.maxRuns = Math.max(1, Math.floor(maxRuns));
    this.maxCalls = Math.max(1, Math.floor(maxCalls));
  }

  finish(run: FinishRun): Promise<Finished> {
    return new Promise((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      if (this.inFlight < this.maxCalls) void this.send();
    });
  }

  private async send(): Promise<void> {
    const group = this.queue.splice(0, this.maxRuns);
    this.inFlight++;
    const sentAt = performance.now();
    let step: DispatchResult & { readonly runs: readonly FinishedRun[] };
    try {
      step = await this.scripts.finishMany(
        group.map((g) => g.run),
        this.channel,
        this.maxPicks,
        this.leaseMs,
      );
    } catch (err) {
      // A script error (one run's bad data reaching a decode) would fail every run of the group,
      // of any campaign, each time it came back: each is sent again alone, so it fails by itself.
      // Runs the failed call recorded before the error find their outcome and release done.
      if (group.length > 1 && (err as Error).name === 'ReplyError') {
        for (const g of group) void this.sendAlone(g, sentAt);
      } else {
        for (const g of group) g.reject(err);
      }
      return;
    } finally {
      this.inFlight--;
      if (this.queue.length > 0 && this.inFlight < this.maxCalls) void this.send();
    }
    await this.handOn(group, step, sentAt);
  }

  /** Hands a step's runs back and its left-over picks to BullMQ, in the order below. */
  private async handOn(group: readonly (typeof this.queue)[number][], step: DispatchResult & { readonly runs: readonly FinishedRun[] }, sentAt: number): Promise<void> {
    // A run the step claimed a pick for goes on with it at once: it does not need BullMQ, and
    // holding it for `addBulk`'s round trip left its slot of the worker idle for that long.
    let waiting = 0;
    for (let i = 0; i < group.length; i++) {
      if (continues(step.runs[i]!)) group[i]!.resolve({ ...step.runs[i]!, sentAt });
      else waiting++;
    }
    // The picks no run of the group took go to BullMQ before the other runs return to BullMQ,
    // so that its fetch finds them there; the next group is sent meanwhile. The runs' ends are
    // recorded whatever becomes of that: a pick not added keeps its lease, which expires and
    // requeues it. A step without picks left still says when it is due again and which window
    // zones passed: delivered without holding the runs up.
    const delivered = this.dispatcher
      .deliver(step)
      .catch((err: Error) => this.log.warn({ err: err.message, picks: step.picks.length }, 'could not hand picks to BullMQ; their leases will requeue them'));
    if (step.picks.length > 0) await delivered;
    if (waiting === 0) return;
    for (let i = 0; i < group.length; i++) if (!continues(step.runs[i]!)) group[i]!.resolve({ ...step.runs[i]!, sentAt });
  }

  private async sendAlone(g: (typeof this.queue)[number], sentAt: number): Promise<void> {
    try {
      await this.handOn([g], await this.scripts.finishMany([g.run], this.channel, this.maxPicks, this.leaseMs), sentAt);
    } catch (err) {
      g.reject(err);
    }
  }
}

/** A run that will run the pick the step claimed for it next (settle.ts `handOn`). */
function continues(r: FinishedRun): boolean {
  return !('error' in r) && r.own !== undefined && r.ownClaim !== undefined;
}
