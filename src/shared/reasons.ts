/**
 * The one catalogue of stable codes. Every outcome reason and every error code that can appear
 * in a report, a status hash, a log line or an exception lives here, with its meaning.
 * `docs/REASONS.md` documents each; `test/unit/reasons.test.ts` keeps the two in step.
 *
 * Codes are public contract: never rename one, only add.
 */

export type Outcome = 'upgraded' | 'skipped' | 'failed';

/** What a dry run records instead: what the outcome would have been, with the same reason. */
export type DryRunOutcome = 'would-upgrade' | 'would-skip' | 'would-fail';

/** Every outcome a target's record can hold. */
export type RecordedOutcome = Outcome | DryRunOutcome;

export const DRY_RUN_OUTCOME: Readonly<Record<Outcome, DryRunOutcome>> = Object.freeze({
  upgraded: 'would-upgrade',
  skipped: 'would-skip',
  failed: 'would-fail',
});

export interface ReasonInfo {
  /** The outcome this code is recorded with, or `null` for a transient error that is retried. */
  readonly outcome: Outcome | null;
  /** Whether an attempt that fails with this code is tried again (within `retry.attempts`). */
  readonly retryable: boolean;
  readonly description: string;
}

const catalogue = {
  // upgraded
  UPGRADED: { outcome: 'upgraded', retryable: false, description: 'The platform accepted the change.' },
  REVERTED: {
    outcome: 'upgraded',
    retryable: false,
    description: 'Undo campaign: the platform accepted the write that put the target back as the original campaign read it before its upgrade.',
  },

  // skipped
  CANCELLED: { outcome: 'skipped', retryable: false, description: 'The campaign was cancelled before this target started.' },
  ALREADY_CURRENT: {
    outcome: 'skipped',
    retryable: false,
    description: 'The target is already in the wanted state (same version, or the patch changes nothing).',
  },
  NOT_RUNNING: {
    outcome: 'skipped',
    retryable: false,
    description: 'The Conductor execution has ended (COMPLETED, FAILED, TIMED_OUT or TERMINATED).',
  },
  CHANGED_SINCE_UPGRADE: {
    outcome: 'skipped',
    retryable: false,
    description:
      'Undo campaign: the target no longer holds what the upgrade wrote (someone changed it since), so it is left as it is.',
  },
  NOT_UPGRADED: {
    outcome: 'skipped',
    retryable: false,
    description: 'Alloy answered 200 with `upgraded: false`: it made no change.',
  },

  // failed, permanent
  WRONG_WORKFLOW: {
    outcome: 'failed',
    retryable: false,
    description: "The Conductor execution belongs to another workflow than `operation.name`.",
  },
  PRECONDITION_FAILED: {
    outcome: 'failed',
    retryable: false,
    description: 'A `test` operation of the RFC 6902 patch did not hold on the current document.',
  },
  PATCH_NOT_APPLICABLE: {
    outcome: 'failed',
    retryable: false,
    description: 'The patch cannot be applied to the current document (a path it names does not exist).',
  },
  CONFLICT_RETRIES_EXHAUSTED: {
    outcome: 'failed',
    retryable: false,
    description: 'Nected kept rejecting the checksum after `conflictRetries` fetch-patch-send rounds.',
  },
  VERIFY_MISMATCH: {
    outcome: 'failed',
    retryable: false,
    description:
      'With `verify`, the platform accepted the write but reading the target back did not show the change (a write it dropped, or another writer in between).',
  },
  NOT_REVERTIBLE: {
    outcome: 'failed',
    retryable: false,
    description:
      "Undo campaign: the upgrade cannot be taken back (the platform's API has no way to, or the original campaign ran with `undo: false` and kept nothing).",
  },
  UNDO_DATA_EXPIRED: {
    outcome: 'failed',
    retryable: false,
    description: "Undo campaign: the original target's outcome record, and the pre-image kept in it, had expired (retention) when the undo campaign was made.",
  },
  REINSTALL_REQUIRED: {
    outcome: 'failed',
    retryable: false,
    description: "Alloy answered 400: the new version's configurable fields differ; the user must reinstall.",
  },
  UNAUTHORIZED: { outcome: 'failed', retryable: false, description: 'The platform answered 401: the credential was refused.' },
  FORBIDDEN: { outcome: 'failed', retryable: false, description: 'The platform answered 403: the credential may not touch this target.' },
  NOT_FOUND: { outcome: 'failed', retryable: false, description: 'The platform answered 404: the target (or the workflow) does not exist.' },
  STATE_CONFLICT: { outcome: 'failed', retryable: false, description: "The platform answered 409: the target's state forbids the change." },
  INVALID_REQUEST: {
    outcome: 'failed',
    retryable: false,
    description: 'The platform answered 400 or 422 (or another 4xx): it rejected the request as invalid.',
  },
  UNEXPECTED_RESPONSE: {
    outcome: 'failed',
    retryable: false,
    description: 'The platform answered 2xx with a body that is not the documented shape.',
  },
  CREDENTIAL_MISSING: {
    outcome: 'failed',
    retryable: false,
    description: "The environment variable named by `connection.credentialRef` is not set on the worker.",
  },
  CONNECTION_NOT_REGISTERED: {
    outcome: 'failed',
    retryable: false,
    description:
      "The campaign's connection is not in this worker's connections registry (`UPSHIFT_CONNECTIONS`), or differs from the registered entry (base URL, credentialRef, operations). No call was made.",
  },
  EGRESS_DENIED: {
    outcome: 'failed',
    retryable: false,
    description:
      'The destination resolved to a loopback, private, link-local, CGNAT, multicast or reserved address and the connection is not registered with `privateNetwork: true`. The call was refused at connect time.',
  },
  RETRIES_EXHAUSTED: {
    outcome: 'failed',
    retryable: false,
    description: 'Every one of `retry.attempts` attempts failed with a transient error; the last one is in `error`.',
  },

  // transient: retried, never an outcome of their own
  THROTTLED: { outcome: null, retryable: true, description: 'The platform answered 429 (Retry-After honoured).' },
  SERVER_ERROR: { outcome: null, retryable: true, description: 'The platform answered 5xx, or 408 (Retry-After honoured on 503).' },
  NETWORK_ERROR: { outcome: null, retryable: true, description: 'The connection failed or was reset before an answer came.' },
  TIMEOUT: { outcome: null, retryable: true, description: 'No complete answer within `connection.timeoutMs`.' },
  CHECKSUM_CONFLICT: {
    outcome: null,
    retryable: true,
    description: 'Nected rejected a stale checksum (409, or 400 naming the checksum); fetched, patched and sent again.',
  },
  INTERNAL_ERROR: {
    outcome: null,
    retryable: true,
    description: 'An unexpected error inside Upshift; retried so one fault cannot fail a target for good.',
  },
} as const satisfies Record<string, ReasonInfo>;

export type ReasonCode = keyof typeof catalogue;

export const REASONS: Readonly<Record<ReasonCode, ReasonInfo>> = Object.freeze(catalogue);

/** Why a campaign is `paused` (the status hash's `pausedReason`). Same rules: stable, only added. */
export const PAUSE_REASONS = Object.freeze({
  OPERATOR: 'Paused by `upshift pause` (or the library / API call).',
  FAILURE_BUDGET_EXCEEDED: "The finished targets' failure ratio went above `rollout.maxFailureRatio`.",
} as const);

export type PauseReason = keyof typeof PAUSE_REASONS;

export function isReasonCode(code: string): code is ReasonCode {
  return Object.prototype.hasOwnProperty.call(REASONS, code);
}
