import type { z } from 'zod';
import type { HttpRequest, HttpResponse } from '../http.js';
import type { ReasonCode } from '../reasons.js';

/** A target: its id field plus optional extra string/number fields (used later for limit keys). */
export type Target = Readonly<Record<string, string | number>>;

export interface ApplyResult {
  readonly outcome: 'upgraded' | 'skipped';
  readonly reason: ReasonCode;
  /**
   * What an upgrade kept to take it back (`captureUndo`): JSON data that `revert` reads, stored in
   * the target's outcome record. Absent when nothing was written or nothing could be kept.
   */
  readonly undo?: unknown;
}

export interface ApplyContext<O> {
  readonly operation: O;
  readonly target: Target;
  /** Sends one request to the campaign's connection (its base URL and per-call timeout). */
  send(req: HttpRequest): Promise<HttpResponse>;
  /** The secret named by `credentialRef`, read from the environment at call time. */
  credential(): string;
  /** Counts one stale-checksum rejection in the campaign's `conflicts`. */
  onConflict(): void;
  /**
   * The spec's `verify`: after a write the platform accepted, read the target back (through
   * `send`) and throw `VERIFY_MISMATCH` unless the change is there.
   */
  readonly verify: boolean;
  /**
   * The spec's `undo` (and not a dry run): keep in `ApplyResult.undo` what `revert` needs to put
   * the target back as it was read before the write.
   */
  readonly captureUndo: boolean;
  /**
   * With `captureUndo`, called right before the write with what `ApplyResult.undo` will hold (a
   * no-op otherwise). It is kept in Redis first, so a later run of the target (this write's
   * answer lost to a timeout or a kill) is handed it as `earlier`.
   */
  keep(kept: unknown): Promise<void>;
  /**
   * What an earlier run of this target passed to `keep` before its write, whose answer never
   * came (a timeout, a killed worker): that write may have landed. When the target shows it did
   * (it holds what that write wrote), the operation returns `upgraded` with `undo: earlier`
   * without writing again: what this run reads is the upgraded target, not a pre-image. When it
   * does not, the operation goes on as a first run would (its `keep` replaces this), so a target
   * someone changed meanwhile keeps the state the write replaces. Undefined when there was none
   * (or without `captureUndo`).
   */
  readonly earlier: unknown;
}

/** What every operation has in common: its `type` literal. */
export interface OperationBase {
  readonly type: string;
}

/**
 * One platform operation, listed by its platform's adapter (`PlatformAdapter.operations`).
 * `apply` returns `upgraded`/`skipped` results and throws `UpshiftError` for everything else; it
 * never decides about retries.
 *
 * Tables hold modules of different operation types as `OperationModule` (the default `O`): that
 * works because `apply` is a method, whose parameter TypeScript checks bivariantly. It is sound
 * because every caller passes an operation that the module's own `schema` parsed (the spec is
 * validated at enqueue), never an arbitrary one.
 */
export interface OperationModule<O extends OperationBase = OperationBase> {
  readonly type: O['type'];
  /** Strict zod schema of `operation` (with its `type` literal); defaults applied on parse. */
  readonly schema: z.ZodType<O>;
  /** The target field that names the target on the platform. */
  readonly targetIdField: string;
  /** Typed extra target fields, when the operation reads any (checked per line). */
  readonly targetFields?: z.ZodRawShape;
  /**
   * When set, the target key is `<id>@<this field>` for targets that set it. The Lua scripts
   * compute the same key from these two names (a unit test keeps them in step).
   */
  readonly targetVersionField?: string;
  /** The identity of a target within a campaign: duplicates of it are counted once. */
  targetKey(target: Target): string;
  apply(ctx: ApplyContext<O>): Promise<ApplyResult>;
  /**
   * Takes one upgrade back, in an undo campaign (operations/undo.ts): `kept` is what `apply` kept
   * (`ApplyResult.undo`), or undefined when it kept nothing. Returns `upgraded`/`REVERTED`, or a
   * skip (`CHANGED_SINCE_UPGRADE` when the target no longer holds what the upgrade wrote,
   * `ALREADY_CURRENT` when it is back already); throws like `apply` (`NOT_REVERTIBLE` when it
   * cannot be done). Absent: the operation cannot be reverted.
   */
  revert?(ctx: ApplyContext<O>, kept: unknown): Promise<ApplyResult>;
  /** The reason a write records (and a dry run's would-be write): `UPGRADED` when absent. */
  readonly writeReason?: ReasonCode;
}

/**
 * One platform as Upshift calls it: everything platform-specific on the calling side. A new
 * platform is one module exporting one of these and one row in `PLATFORMS` (./index.ts), or a
 * `registerPlatform()` call at startup.
 */
export interface PlatformAdapter<Name extends string = string> {
  /** Lower-case identifier; the sandbox part of the platform uses the same name. */
  readonly name: Name;
  /**
   * Request headers (lower-case) that carry the credential. Logs redact them and stored errors
   * scrub `<header>: <value>` of them, so a platform that echoes a request back leaks nothing.
   */
  readonly secretHeaders: readonly string[];
  /** The operations on this platform; their `type`s are unique across all platforms. */
  readonly operations: readonly OperationModule[];
}
