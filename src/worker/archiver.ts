import { archiveRecords, flushOutbox, schedulerKeys, type Logger, type OutboxRecord, type RedisClient, type Scripts } from '../shared/index.js';

/**
 * Moves the outcome records this worker wrote out of the deployment's slot into each campaign's
 * own (the second step in shared/records.ts). Records are batched per campaign: those that
 * finish within `batchMs` of the first, or while the previous batch is in flight, go together,
 * so a batch costs two round trips for many targets.
 *
 * Also sweeps, every `sweepMs`, the outboxes of every campaign in `<p>:sched:outboxes`: records
 * a killed worker never moved, and retention expiries owed to ended campaigns. Losing a batch
 * (Redis down, worker killed) loses nothing: the records stay in the outbox, where readers find
 * them, until a sweep moves them.
 */
export class Archiver {
  private pending = new Map<string, OutboxRecord[]>();
  private flushing: Promise<void> | undefined;
  private sweeping: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly redis: RedisClient,
    private readonly scripts: Scripts,
    private readonly prefix: string,
    private readonly log: Logger,
    private readonly batchMs: number,
    sweepMs: number,
  ) {
    this.timer = setInterval(() => this.sweep(), sweepMs);
    this.timer.unref();
  }

  add(campaignId: string, record: OutboxRecord): void {
    let batch = this.pending.get(campaignId);
    if (!batch) this.pending.set(campaignId, (batch = []));
    batch.push(record);
    this.flushing ??= this.flush();
  }

  private async flush(): Promise<void> {
    // Let the runs settling meanwhile join the batch: two round trips for many records, rather
    // than for each (a record is readable from the outbox while it waits).
    await new Promise((resolve) => setTimeout(resolve, this.batchMs));
    while (this.pending.size > 0) {
      const batches = this.pending;
      this.pending = new Map();
      await Promise.all(
        [...batches].map(([c, records]) =>
          archiveRecords(this.redis, this.scripts, this.prefix, c, records).catch((err: Error) =>
            this.log.warn({ campaignId: c, records: records.length, err: err.message }, 'could not archive outcome records; a sweep will'),
          ),
        ),
      );
    }
    this.flushing = undefined;
  }

  /** One pass over every campaign with records in its outbox. One pass at a time. */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        for (const c of await this.redis.smembers(schedulerKeys(this.prefix).outboxes)) {
          await flushOutbox(this.redis, this.scripts, this.prefix, c);
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'outbox sweep failed; the next one retries');
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  /** Stops sweeping and waits for what this worker still has to archive. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
    await this.flushing;
  }
}
