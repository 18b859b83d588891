/**
 * The options every sandbox has that can change on a running sandbox (`Sandbox.configure`,
 * `POST /__sandbox/config`). In a file of their own because the platform modules' contract
 * (http.ts) reads them and the full options (options.ts) are built from the platform table: the
 * two importing each other would tie every platform module into a loop.
 */
export interface CommonConfig {
  /** Added before writing every platform answer (never to `/__sandbox/*`). */
  latencyMs: number;
  /**
   * Share of platform requests whose connection is reset (TCP RST, no answer at all) once the
   * request body has been read and before anything is applied: the client sees a network error
   * and the platform's state is unchanged. Drawn before `throttleRate` and `failRate`. Counted
   * in `stats.faults.resets`; the recorded request has no `status` and `fault: 'reset'`.
   */
  resetRate: number;
  /**
   * Share of platform requests that reach the platform (no reset, throttle or injected failure)
   * whose answer is held back by `slowMs` on top of `latencyMs`. The state change is applied
   * first, so a client whose timeout fires meanwhile has changed the target without hearing of
   * it. Counted in `stats.faults.slow`; the recorded request has `fault: 'slow'`.
   */
  slowRate: number;
  /** Extra delay of a slow answer (`slowRate`), in ms (at most one hour); 30000 by default, past a typical client timeout. */
  slowMs: number;
  /**
   * Share of platform writes (any method but GET and HEAD) that reach the platform (no reset,
   * throttle or injected failure) whose state change is silently lost: a write its handler
   * answers 2xx is answered exactly as usual, but the platform's state is put back as it was
   * before (like a platform that acknowledges and then loses the write), so only reading the
   * target back shows it. Not counted in `appliedByTarget`; counted in `stats.faults.droppedWrites`;
   * the recorded request has `fault: 'dropped'` (even when it was also slow). Drawn from its own
   * seeded stream, so the other faults' sequences do not depend on it. Each dropped write copies
   * and restores that platform's whole state (O(state)); at the default 0 nothing is copied.
   */
  dropWriteRate: number;
  /** Share of platform requests answered 500/502/503 `{"message":"injected fault","retryable":true}`. */
  failRate: number;
  /** Share of platform requests answered 429 with `Retry-After: <retryAfterS>`. */
  throttleRate: number;
  /** Integer seconds sent in Retry-After (on 429 and injected 503). */
  retryAfterS: number;
  /**
   * A regular expression applied to each request's target key (the same key as
   * `requestsByTarget`, e.g. `alloy:<workflowId>:<userId>`); its first capture group is the value
   * whose concurrency `maxInFlightByKey` records. Lets a test map targets to limit keys (e.g.
   * `^alloy:[^:]+:(t\d+)-`) without the client sending anything the real platform would not get.
   *
   * Compiled as `new RegExp(pattern)` (no flags) and must hold at least one capture group.
   * Requests with no target key, whose key does not match, or whose first group did not take
   * part in the match are not counted per key. Null (the default): nothing is counted per key.
   */
  limitKeyPattern: string | null;
  /**
   * The platform's capacity per limit key value (`limitKeyPattern`'s first group; a request
   * without a limit key is measured against every request in flight): up to `capacity` requests in flight are answered at `latencyMs`;
   * above it the latency grows with the excess (`latencyMs x inFlight / capacity`, the in-flight
   * count taken as the request arrives, itself included); above twice it the request is answered
   * 429 with `Retry-After: 1` at once (shedding costs the platform nothing), counted in
   * `stats.overCapacity`. Deterministic: no draw. Null (the default): unlimited.
   */
  capacity: number | null;
}
