import { z } from 'zod';
import { CAMPAIGN_ID, ERRORS, InputError, REASONS, REPORT_OUTCOMES, specJsonSchema, type ApiErrorKind, type ErrorCode, type ReasonCode } from '../../shared/index.js';

/**
 * The API's zod schemas. Handlers validate with them; the OpenAPI document is generated from
 * them (and from the campaign spec's own schema), so the two cannot drift apart.
 */

/** What `?outcome=` accepts: the same values as `upshift report --outcome`. */
export const OUTCOME_FILTERS = REPORT_OUTCOMES;

export const idParams = z.strictObject({
  id: z.string().regex(CAMPAIGN_ID, 'must match ^[A-Za-z0-9_-]{1,64}$').describe('campaign id'),
});

export const reportQuery = z.strictObject({
  outcome: z.enum(OUTCOME_FILTERS).optional().describe('only targets with this outcome'),
  format: z.enum(['ndjson', 'csv']).default('ndjson').describe('one JSON object a line, or CSV with a header'),
});

export const retryBody = z
  .strictObject({
    reason: z
      .enum(Object.keys(REASONS) as [string, ...string[]])
      .optional()
      .describe('only targets that failed with this reason code (docs/REASONS.md)'),
  })
  .describe('optional: without a body every failed target runs again');

export const undoBody = z
  .strictObject({
    dryRun: z.boolean().optional().describe('make `<id>-undo-dry` instead: every target is read, nothing is written, a running campaign is left running'),
  })
  .describe('optional: without a body the undo is real');

export const undoResult = z.object({
  campaignId: z.string().describe('the undo campaign: `<id>-undo`, or `<id>-undo-dry` for a dry run'),
  undoOf: z.string().describe('the campaign taken back'),
  total: z.number().int().describe("the undo campaign's targets: those the campaign upgraded"),
  created: z.boolean().describe('false when the undo campaign existed already: nothing new was enqueued'),
  cancelledOriginal: z.boolean().describe('the campaign was still running, and this undo cancelled it (and waited for its targets in flight) first'),
});

export const enqueueResult = z.object({
  campaignId: z.string(),
  total: z.number().int().describe('distinct targets'),
  created: z.boolean().describe('false when the id existed already with the same spec: nothing new was enqueued'),
  discovering: z.boolean().optional().describe('true (HTTP 202): discovery pages on in the background; the status hash shows `discovering` until it ends'),
});

const count = z.number().int();
const ms = z.number().int().optional();

export const campaignStatus = z.object({
  id: z.string(),
  state: z.enum(['running', 'paused', 'gated', 'cancelled', 'completed', 'unknown']),
  operation: z.string(),
  name: z.string(),
  total: count,
  upgraded: count,
  skipped: count,
  failed: count,
  wouldUpgrade: count,
  wouldSkip: count,
  wouldFail: count,
  dryRun: z.boolean(),
  pending: count.describe('waiting to start'),
  active: count.describe('dispatched, holding their slots'),
  retries: count,
  conflicts: count,
  reclaimed: count,
  retryAfterWaits: count,
  retryAfterWaitMs: count,
  pausedReason: z.string().optional().describe('OPERATOR or FAILURE_BUDGET_EXCEEDED'),
  cancelReason: z.string().optional().describe('FAILURE_BUDGET_EXCEEDED when a breach with rollout.onBreach "undo" cancelled it'),
  undoCampaign: z.string().optional().describe('the undo campaign made of this one (upshift undo)'),
  undoOf: z.string().optional().describe('the campaign this undo campaign takes back'),
  undoError: z.string().optional().describe('why the undo campaign a breach asked for could not be made'),
  rolloutStep: count.optional(),
  rolloutSteps: count.optional(),
  rolloutLimit: count.optional(),
  steps: z
    .array(
      z.object({
        cohort: z.string().describe('what the step takes: "tier=internal|staff" (a cohort), "10%", "50 targets", "10% of the rest", "the rest"'),
        targets: count,
        upgraded: count,
        skipped: count,
        failed: count,
        failureRatio: z.number().describe('failed / (upgraded + failed) of this step'),
      }),
    )
    .optional()
    .describe('staged rollout: each step in order, with its own counts'),
  breach: z.object({ failed: count, samples: count, ratio: z.number(), step: count.optional().describe('the step whose outcomes breached') }).optional(),
  createdAt: ms,
  updatedAt: ms,
  finishedAt: ms,
  reasons: z.record(z.string(), count).describe('targets not upgraded, by reason code'),
  notifications: z
    .object({ total: count, delivered: count, failed: count, pending: count, changes: count.describe('grows with every change to a delivery: read the list when it moved') })
    .optional()
    .describe('its webhook deliveries counted; absent when it has none'),
  waitingForWindow: count.optional().describe('maintenance windows (spec schedule): targets waiting for their time zone\'s window to open'),
  nextWindowAt: ms.describe('maintenance windows: when the next window of a waiting target opens (ms since the epoch)'),
});

export const campaignList = z.object({
  campaigns: z.array(campaignStatus.extend({ ageMs: count })).describe('newest first'),
});

export const limitUsage = z.object({
  keys: z.array(
    z.object({
      key: z.string(),
      inUse: count.describe('live slots on the key, every campaign sharing it'),
      concurrency: count.nullable().describe("this campaign's figure; null for a rate-only limit"),
      atCapacity: z.boolean(),
    }),
  ),
  truncated: z.boolean().describe('the campaign has more keys than were read'),
});

export const notificationList = z.object({
  deliveries: z
    .array(
      z.object({
        eventId: z.string().describe('`<campaign>:<n>`, the `Upshift-Event-Id` header: the receiver\'s idempotency key'),
        event: z.string().describe('step-completed, gated, paused, completed, cancelled or undo-started'),
        notifier: z.string().describe('the registered notifier (UPSHIFT_CONNECTIONS "notifiers")'),
        status: z.enum(['pending', 'delivered', 'failed']),
        attempts: count.describe('attempts started (one whose sender died counts)'),
        lastError: z.string().optional().describe("the last failed attempt's error, also after a later success"),
        createdAt: count,
        updatedAt: count,
        deliveredAt: ms,
        failedAt: ms.describe('given up: 24 h of failed attempts, or the egress guard refused the address'),
        nextAt: ms.describe('pending after a failed attempt: when the next one is due'),
      }),
    )
    .describe('oldest event first, then by notifier; the newest deliveries only when `truncated`'),
  truncated: z.boolean().describe('the campaign has more deliveries than were listed (older events left out)'),
});

export const controlResult = z.object({
  campaignId: z.string(),
  state: z.string().describe('the state after the action'),
  drained: count.optional().describe('cancel: targets not started, recorded skipped/CANCELLED'),
  retried: count.optional().describe('retry: failed targets put back to run'),
});

/** The catalogue's codes an answer names (rows with `apiCode`), and every `error` kind, from the one table. */
const answerCodes = (Object.keys(ERRORS) as ErrorCode[]).filter((c) => ERRORS[c].apiCode);
const answerKinds = [...new Set(Object.values(ERRORS).map((r) => r.api))];

export const errorBody = z.object({
  error: z.enum(answerKinds as [ApiErrorKind, ...ApiErrorKind[]]),
  message: z.string(),
  code: z.enum(answerCodes as [ErrorCode, ...ErrorCode[]]).optional(),
  reason: z.enum(Object.keys(REASONS) as [ReasonCode, ...ReasonCode[]]).optional(),
  source: z.string().optional(),
  line: count.optional(),
  field: z.string().optional(),
  issues: z
    .array(z.object({ path: z.array(z.union([z.string(), z.number()])), message: z.string(), line: count.optional() }))
    .optional(),
});

export const health = z.object({ status: z.enum(['ok', 'unavailable']) });

/** A zod schema as the JSON Schema the OpenAPI 3.0 document embeds. */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'output'): Record<string, unknown> {
  return z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }) as Record<string, unknown>;
}

let specSchemaCache: Record<string, unknown> | undefined;
/** The campaign spec's schema, generated once. */
export function campaignSpecSchema(): Record<string, unknown> {
  specSchemaCache ??= specJsonSchema();
  return specSchemaCache;
}

/** Validates a request part; a failure is an `InputError` carrying every zod issue. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, source: string): z.output<T> {
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({
    path: i.path.map((p) => (typeof p === 'number' ? p : String(p))),
    message: i.message,
  }));
  const first = issues[0]!;
  throw new InputError(source, first.message, { field: first.path.join('.'), issues });
}
