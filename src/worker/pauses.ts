/**
 * Retry-After pauses this worker knows of, per connection, on its own clock. The scheduler
 * already holds back targets that have not started (`claim` checks the pause); this holds back
 * the next call of a target that is already running (Conductor's POST after its GET, Nected's
 * PATCH after its GET), told by the `pause` events any worker's `throttle` publishes.
 */
export class PauseBoard {
  private readonly until = new Map<string, number>();

  /** `untilMs` and `nowMs` are Redis's clock; the gap between them is what counts here. */
  note(connection: string, untilMs: number, nowMs: number): void {
    const local = Date.now() + (untilMs - nowMs);
    if (local > (this.until.get(connection) ?? 0)) this.until.set(connection, local);
  }

  /** Resolves once no pause holds the connection. */
  async wait(connection: string): Promise<void> {
    for (;;) {
      const left = (this.until.get(connection) ?? 0) - Date.now();
      if (left <= 0) {
        this.until.delete(connection);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, left));
    }
  }
}
