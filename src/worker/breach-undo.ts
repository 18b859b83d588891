import { undoCampaign } from '../producer/undo.js';
import { campaignKeys, CatalogueError, DEFAULTS, InputError, schedulerKeys, type ConnectionRegistry, type Logger, type RedisClient } from '../shared/index.js';

/** Whether making the undo campaign may succeed later unchanged (Redis back, targets in flight done, another stager done). */
function retryable(err: unknown): boolean {
  if (err instanceof InputError) return false;
  if (err instanceof CatalogueError) return err.retryable;
  return true;
}

/**
 * Makes the undo campaign of every campaign whose failure budget broke with
 * `rollout.onBreach: "undo"`. The scheduler cancels such a campaign in the same script that
 * counted the breaking outcome and lists it in `<p>:sched:undo-due`; the event it publishes wakes
 * this at once, and a sweep every `sweepMs` finds what a worker that died on the way left there.
 * A lock key keeps the workers from making it side by side; `undoCampaign` is idempotent anyway
 * (the drain, the wait, the campaign id). One that cannot be made (an input error) leaves the
 * list, with `undoError` in the campaign's status hash.
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
    // One worker at a time makes it (the others' events and sweeps pass); the lock outlives the
    // longest wait for targets in flight, and a worker that dies leaves it to expire.
    const lock = `${this.due}:lock:${id}`;
    if ((await this.redis.set(lock, '1', 'PX', DEFAULTS.undoWaitMs + DEFAULTS.stagingTtlMs, 'NX')) === null) return;
    try {
      const made = await undoCampaign(id, { redis: this.redis, prefix: this.prefix, connections: this.connections });
      await this.redis.zrem(this.due, id);
      this.log.info({ campaignId: id, undoCampaign: made.campaignId, total: made.total }, 'failure budget breached: undo campaign started');
    } catch (err) {
      if (retryable(err)) {
        this.log.warn({ campaignId: id, err: (err as Error).message }, 'could not start the undo campaign of a breached campaign yet; a sweep retries');
        return;
      }
      // Trying again would fail the same way (the connection left the registry, the id is taken):
      // the campaign says why, for an operator's `upshift undo` once it is fixed.
      await this.redis.zrem(this.due, id);
      await this.redis.hset(campaignKeys(this.prefix, id).status, 'undoError', (err as Error).message.slice(0, 500));
      this.log.error({ campaignId: id, err: (err as Error).message }, 'the undo campaign of a breached campaign cannot be made');
    } finally {
      await this.redis.del(lock);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
