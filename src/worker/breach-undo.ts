import { undoCampaign } from '../producer/undo.js';
import { schedulerKeys, type ConnectionRegistry, type Logger, type RedisClient } from '../shared/index.js';

/**
 * Makes the undo campaign of every campaign whose failure budget broke with
 * `rollout.onBreach: "undo"`. The scheduler cancels such a campaign in the same script that
 * counted the breaking outcome and lists it in `<p>:sched:undo-due`; the event it publishes wakes
 * this at once, and a sweep every `sweepMs` finds what a worker that died on the way left there.
 * `undoCampaign` is idempotent (the drain, the wait, the campaign id), so two workers on the
 * same campaign make one undo campaign.
 */
export class BreachUndo {
  private readonly running = new Map<string, Promise<void>>();
  private readonly timer: NodeJS.Timeout;
  private readonly due: string;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly connections: ConnectionRegistry,
    private readonly log: Logger,
    sweepMs: number,
  ) {
    this.due = schedulerKeys(prefix).undoDue;
    this.timer = setInterval(() => void this.sweep(), sweepMs);
    this.timer.unref();
  }

  /** A breach was announced for campaign `id`. */
  note(id: string): void {
    if (this.running.has(id)) return;
    const run = this.undo(id).finally(() => this.running.delete(id));
    this.running.set(id, run);
  }

  async sweep(): Promise<void> {
    try {
      for (const id of await this.redis.zrange(this.due, 0, -1)) this.note(id);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'undo-due sweep failed; the next one retries');
    }
  }

  private async undo(id: string): Promise<void> {
    try {
      const made = await undoCampaign(id, { redis: this.redis, prefix: this.prefix, connections: this.connections });
      await this.redis.zrem(this.due, id);
      this.log.info({ campaignId: id, undoCampaign: made.campaignId, total: made.total }, 'failure budget breached: undo campaign started');
    } catch (err) {
      this.log.warn({ campaignId: id, err: (err as Error).message }, 'could not start the undo campaign of a breached campaign; a sweep retries');
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
