import type { z } from 'zod';
import type { HttpRequest, HttpResponse } from '../http.js';
import type { ReasonCode } from '../reasons.js';

/** A target: its id field plus optional extra string/number fields (used later for limit keys). */
export type Target = Readonly<Record<string, string | number>>;

export interface ApplyResult {
  readonly outcome: 'upgraded' | 'skipped';
  readonly reason: ReasonCode;
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
}

/**
 * One platform operation. Every module has this shape, so a new operation is one file and one
 * row in `./index.ts`. `apply` returns `upgraded`/`skipped` results and throws `UpshiftError`
 * for everything else; it never decides about retries.
 */
export interface OperationModule<O extends { type: string } = { type: string }> {
  readonly type: O['type'];
  readonly platform: 'alloy' | 'conductor' | 'tallyfy' | 'nected';
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
}
