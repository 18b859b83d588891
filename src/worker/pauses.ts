import type { AbortSignalLike } from '../shared/index.js';

/**
 * Retry-After pauses as this worker knows them, per connection, and the gate every platform
 * call passes at the moment undici writes it (`open`, see HttpClient's `SendGate`).
 *
 * A call leaves only if the worker knows of no pause on its connection AND its last word from
 * Redis that the connection was not paused is at most `gateMs` old, counted from when that
 * request was *sent* (a claim: claim-1.lua and the dispatch step check the pause; or
 * pauseOf-1.lua, asked when the word is stale). A pause recorded after that word was sent is
 * recorded after the call's gate window opened, so no call passes the gate later than `gateMs`
 * after a pause was recorded in Redis (by the throttle script, on Redis's clock) — however
 * busy this process is, however late the `pause` event is read, however long a request waited
 * for a socket. Load costs extra `pauseOf` round trips, never the bound. (The write follows the
 * check synchronously; only the OS or the garbage collector suspending the process in between
 * can delay it.) The worker's own clock only measures elapsed time here (performance.now()),
 * so clocks need not agree.
 *
 * The `pause` events that any worker's throttle publishes (and `pauseOf` answers that find a
 * pause) hold calls until the pause ends; when it has, the next call asks Redis, so the end of
 * a pause is Redis's (TIME), the same for every worker, and never earlier.
 */
export class PauseBoard {
  /** Connection -> end of its pause, performance.now() ms. */
  private readonly until = new Map<string, number>();
  /** Connection -> when the newest request that found it unpaused was sent, performance.now() ms. */
  private readonly word = new Map<string, number>();
  /** Connection -> the pauseOf call in flight, shared by every call waiting on it. */
  private readonly asking = new Map<string, Promise<void>>();

  constructor(
    /** pauseOf-1.lua: Redis's clock and the connection's pause end. */
    private readonly pauseOf: (connection: string) => Promise<{ nowMs: number; untilMs: number }>,
    /** The bound: how old the last word from Redis may be when a call is written. */
    private readonly gateMs: number,
    /** Wait between attempts when Redis cannot be asked. */
    private readonly retryMs = 100,
  ) {}

  /** A pause recorded in Redis: `untilMs` and `nowMs` are Redis's clock; only their gap counts here. */
  note(connection: string, untilMs: number, nowMs: number): void {
    // Counted from when this process read it, so a late read makes the local pause longer, never shorter.
    const local = performance.now() + (untilMs - nowMs);
    if (local > (this.until.get(connection) ?? 0)) this.until.set(connection, local);
    // Whatever Redis said before is superseded: once the pause is over, the next call asks again.
    this.word.delete(connection);
  }

  /** A request sent at `sentAt` (performance.now()) found the connection unpaused (a claim). */
  unpaused(connection: string, sentAt: number): void {
    if (sentAt > (this.word.get(connection) ?? -Infinity)) this.word.set(connection, sentAt);
    if (this.word.size > 1000) this.prune();
  }

  /** The gate, asked synchronously at the write: no known pause and a fresh word from Redis. */
  open(connection: string): boolean {
    const now = performance.now();
    const until = this.until.get(connection);
    if (until !== undefined && until > now) return false;
    return now - (this.word.get(connection) ?? -Infinity) <= this.gateMs;
  }

  /**
   * Resolves once `open(connection)` holds: waits out known pauses and asks Redis when the last
   * word is stale. Rejects with the signal's reason once `signal` aborts (the lease was lost).
   * `onPaused`, if given, is awaited once, the first time a known pause holds the call, before
   * the wait; a rejection ends the wait with it (the processor gives its target back there).
   */
  async clear(connection: string, signal?: AbortSignalLike, onPaused?: () => Promise<void>): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const now = performance.now();
      const until = this.until.get(connection);
      if (until !== undefined) {
        if (until > now) {
          if (onPaused) {
            const first = onPaused;
            onPaused = undefined;
            await first();
            continue;
          }
          await sleep(until - now);
          continue;
        }
        this.until.delete(connection);
      }
      if (now - (this.word.get(connection) ?? -Infinity) <= this.gateMs) return;
      await this.ask(connection);
    }
  }

  private ask(connection: string): Promise<void> {
    let asking = this.asking.get(connection);
    if (!asking) {
      const sentAt = performance.now();
      asking = this.pauseOf(connection).then(
        ({ nowMs, untilMs }) => {
          if (untilMs > nowMs) this.note(connection, untilMs, nowMs);
          else this.unpaused(connection, sentAt);
        },
        // Redis unreachable: the call waits (the lease, renewed through the same Redis, ends it).
        () => sleep(this.retryMs),
      );
      asking = asking.finally(() => this.asking.delete(connection));
      this.asking.set(connection, asking);
    }
    return asking;
  }

  /** Drops words too old to open the gate, so connections no longer used are forgotten. */
  private prune(): void {
    const now = performance.now();
    for (const [c, at] of this.word) if (now - at > this.gateMs) this.word.delete(c);
  }
}

/**
 * Thrown at the send gate by a run that gave its target back while a Retry-After pause held its
 * call (giveBack-1.lua: its key held more slots than its cut adaptive figure), or that found it
 * no longer held the target: the target is back in its group, the run sends nothing more and
 * settle.ts records nothing.
 */
export class GivenBack extends Error {
  constructor(readonly how: 'given-back' | 'lost') {
    super(how === 'given-back' ? 'target given back during a Retry-After pause' : 'target no longer held');
    this.name = 'GivenBack';
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
