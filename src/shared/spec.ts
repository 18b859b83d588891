import { z } from 'zod';
import { InputError, type InputIssue } from './errors.js';
import { baseUrlSchema, CONNECTION_NAME, NOTIFY_EVENTS, applyCeilings, checkNotifiers, resolveConnection, type ConnectionRegistry, type EffectiveLimit, type ResolvedConnection } from './connections.js';
import { DEFAULTS } from './config.js';
import { limitSchema, MAX_LIMITS } from './limits.js';
import { isWellFormed } from './operations/common.js';
import { operationFor, operationSchema as operationSchemaFromTable, type OperationModule, type Target } from './operations/index.js';
import { scheduleSchema, TARGET_ZONE } from './windows.js';

/**
 * The campaign spec: the public contract of the producer (documented in README.md).
 * Objects are strict, so a misspelt field is an error rather than a silently ignored option.
 */

export const CAMPAIGN_ID = /^[A-Za-z0-9_-]{1,64}$/;

const timeoutMs = z.number().int().min(DEFAULTS.minCallTimeoutMs).max(DEFAULTS.maxCallTimeoutMs);

/**
 * A registered connection's name, or a copy of a registered entry (accepted only when it equals
 * one: connections.ts). Resolved against the registry by `validateSpec`; never trusted as given.
 */
const connectionSchema = z.union([
  z.string().regex(CONNECTION_NAME, 'must name a registered connection'),
  z.strictObject({ name: z.string().regex(CONNECTION_NAME, 'must name a registered connection'), timeoutMs: timeoutMs.optional() }),
  z.strictObject({
    baseUrl: baseUrlSchema,
    credentialRef: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be the name of an environment variable'),
    timeoutMs: timeoutMs.optional(),
  }),
]);

const retrySchema = z.strictObject({
  attempts: z.number().int().min(1).max(100).default(DEFAULTS.retryAttempts),
  backoffMs: z.number().int().min(0).max(3_600_000).default(DEFAULTS.retryBackoffMs),
});

const cohortValue = z.union([z.string(), z.number()], { message: 'a string or a number, or an array of them' });

/** A cohort step: the targets whose fields equal one of the values given (every field must match). */
const cohortStep = z.strictObject({
  where: z
    .record(z.string().min(1), z.union([cohortValue, z.array(cohortValue).min(1, 'at least one value')]))
    .refine((w) => Object.keys(w).length > 0, 'names at least one target field'),
});

const rolloutStep = z.union([
  z.number().gt(0, 'a percentage above 0').max(100, 'a percentage of at most 100'),
  z.strictObject({ count: z.number().int().min(1) }),
  cohortStep,
]);

const rolloutSchema = z
  .strictObject({
    steps: z.array(rolloutStep).min(1).max(20),
    maxFailureRatio: z.number().min(0).max(1).optional(),
    minSamples: z.number().int().min(1).default(20),
    gate: z.enum(['auto', 'manual']).default('auto'),
    /** What a breached failure budget does: pause the campaign, or cancel it and start its undo campaign. */
    onBreach: z.enum(['pause', 'undo']).default('pause'),
  })
  .refine(
    (r) => r.steps.every((s, i) => i === 0 || typeof s !== 'number' || typeof r.steps[i - 1] !== 'number' || s > (r.steps[i - 1] as number)),
    'percentages must increase from step to step (they are cumulative)',
  );

const CONDUCTOR_STATUSES = ['RUNNING', 'PAUSED', 'COMPLETED', 'FAILED', 'TIMED_OUT', 'TERMINATED'] as const;

/** Targets found by Conductor's search API instead of listed (conductor.upgradeExecution only). */
const discoverSchema = z.strictObject({
  workflowName: z.string().min(1).max(256).regex(/^[^,()\s]+$/, 'must not contain spaces, commas or parentheses'),
  version: z.number().int().min(0).optional(),
  status: z.array(z.enum(CONDUCTOR_STATUSES)).min(1).default(['RUNNING', 'PAUSED']),
  pageSize: z.number().int().min(1).max(DEFAULTS.discoveryPageSize).default(DEFAULTS.discoveryPageSize),
  /** Discovery stops once the campaign holds this many targets (status `discoverStopped: MAX_TARGETS`). */
  maxTargets: z.number().int().min(1).max(10_000_000).default(DEFAULTS.discoveryMaxTargets),
  /** Discovery stops adding pages this long after it started in this process (`discoverStopped: DEADLINE`). */
  deadlineMs: z.number().int().min(1000).max(86_400_000).default(DEFAULTS.discoveryDeadlineMs),
});

export type DiscoverSpec = z.infer<typeof discoverSchema>;

/** Who is told of the campaign's events (README, "Notifications"): registered notifiers only. */
const notifySchema = z
  .array(
    z.strictObject({
      to: z.string().regex(CONNECTION_NAME, 'must name a registered notifier'),
      events: z.array(z.enum(NOTIFY_EVENTS)).min(1).refine((e) => new Set(e).size === e.length, 'lists an event twice'),
    }),
  )
  .max(10)
  .refine((n) => new Set(n.map((x) => x.to)).size === n.length, 'names a notifier twice: list all its events in one entry')
  // Optional, not defaulted: a spec without it is stored as before, so re-enqueuing a campaign
  // made by an earlier version is still the same spec.
  .optional();

// Lazy: built from the platform table on first use, after every platform has been registered.
const operationSchema = z.lazy(() => operationSchemaFromTable('the campaign spec schema'));

const specSchema = z.strictObject({
  id: z.string().regex(CAMPAIGN_ID, 'must match ^[A-Za-z0-9_-]{1,64}$').optional(),
  // Shown on operators' terminals and dashboards: text only, nothing a terminal would obey.
  name: z.string().max(200).regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'must not contain control characters').optional(),
  connection: connectionSchema,
  operation: operationSchema,
  // Parsed from nothing, so an absent `retry` takes the field defaults above (a getter: the
  // JSON Schema shows the object).
  retry: retrySchema.default(() => retrySchema.parse({})),
  limits: z.array(limitSchema).max(MAX_LIMITS, `at most ${MAX_LIMITS} limits per campaign`).default([]),
  rollout: rolloutSchema.optional(),
  dryRun: z.boolean().default(false),
  /** After each accepted write, read the target back; `VERIFY_MISMATCH` when the change is absent. */
  verify: z.boolean().default(false),
  /** Keep, in each target's outcome record, what `upshift undo` needs to put it back as it was. */
  undo: z.boolean().default(true),
  notify: notifySchema,
  /** Maintenance windows: targets start only while their zone's clock is inside one (windows.ts). */
  schedule: scheduleSchema.optional(),
  targets: z.union([z.array(z.unknown()), z.strictObject({ discover: discoverSchema })]).optional(),
});

/**
 * A validated spec: the schema's output (defaults applied; `dryRun`: only the read calls are
 * made, outcomes recorded as would-upgrade / would-skip / would-fail) with its connection and
 * limits resolved against the operator's registry.
 */
export type CampaignSpec = Readonly<Omit<z.output<typeof specSchema>, 'connection' | 'limits'>> & {
  /** Resolved against the operator's registry: what the campaign may use, never what it asked. */
  readonly connection: ResolvedConnection;
  /** The spec's limits under the connection's registry ceilings (`shared` ones are the registry's). */
  readonly limits: readonly EffectiveLimit[];
  /** Why the registry changed what the spec asked (a clipped figure); shown in the status hash. */
  readonly warnings?: readonly string[];
};

function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

/** Parses spec text. Errors name the JSON line (syntax) or the field (schema). */
export function parseSpec(text: string, source: string, connections: ConnectionRegistry): CampaignSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(source, `not valid JSON: ${(err as Error).message}`, { line: jsonErrorLine(text, err) });
  }
  return validateSpec(raw, source, connections);
}

/** Steps are cumulative: a percentage of the targets, or `{count}` targets. */
export type RolloutSpec = z.output<typeof rolloutSchema>;

/**
 * A rollout's steps as cumulative target counts for a campaign of `total` targets: rounded up,
 * never decreasing, duplicates dropped, and a last step of every target added when missing.
 */
export function rolloutLimits(rollout: RolloutSpec, total: number): number[] {
  const out: number[] = [];
  for (const step of rollout.steps) {
    // Cohort steps need each target's fields: rolloutPlan.
    if (isCohortStep(step)) continue;
    const n = Math.min(total, typeof step === 'number' ? Math.ceil((total * step) / 100) : step.count);
    if (n > (out.at(-1) ?? 0)) out.push(n);
  }
  if ((out.at(-1) ?? 0) < total) out.push(total);
  return out;
}

type RolloutStep = RolloutSpec['steps'][number];

/** A cohort step (`{ where }`) of a rollout, as opposed to a percentage or a count. */
export function isCohortStep(step: RolloutStep): step is Extract<RolloutStep, { where: unknown }> {
  return typeof step === 'object' && 'where' in step;
}

/** The index of the first cohort step whose `where` the target matches (every field equal to a value given), or undefined. */
export function cohortOf(rollout: RolloutSpec, target: Readonly<Record<string, unknown>>): number | undefined {
  const i = rollout.steps.findIndex(
    (step) =>
      isCohortStep(step) &&
      Object.entries(step.where).every(([field, want]) => (Array.isArray(want) ? want : [want]).some((v) => target[field] === v)),
  );
  return i < 0 ? undefined : i;
}

/** One step of a rollout with cohorts as it runs: `at` its index in `rollout.steps` (`steps.length` for the implied last one). */
export interface PlannedStep {
  /** Absent without cohort steps: then every step serves every group. */
  readonly at?: number;
  /** A percent, count or implied last step: it takes targets matched by no cohort. */
  readonly rest: boolean;
  readonly targets: number;
  readonly label: string;
}

/**
 * The steps of a rollout with cohorts, and their cumulative target counts, from the targets each
 * cohort step matched (`cohorts[i]` for step i) and those no cohort matched (`rest`). Percent and
 * count steps take from the rest only (cumulatively, like without cohorts), so that a percentage
 * never takes a later cohort's targets early; the rest not taken by them forms the implied last
 * step. Steps that take nobody are left out, as nothing would ever finish them.
 */
export function rolloutPlan(rollout: RolloutSpec, cohorts: readonly number[], rest: number): { limits: number[]; plan: PlannedStep[] } {
  const limits: number[] = [];
  const plan: PlannedStep[] = [];
  let taken = 0;
  let restTaken = 0;
  const withCohorts = rollout.steps.some(isCohortStep);
  const rested = withCohorts ? ' of the rest' : '';
  const push = (at: number, isRest: boolean, n: number, label: string): void => {
    taken += n;
    limits.push(taken);
    plan.push({ ...(withCohorts ? { at } : {}), rest: isRest, targets: n, label });
  };
  rollout.steps.forEach((step, at) => {
    if (isCohortStep(step)) {
      const n = cohorts[at] ?? 0;
      if (n > 0) push(at, false, n, cohortLabel(step.where));
      return;
    }
    const upto = Math.min(rest, typeof step === 'number' ? Math.ceil((rest * step) / 100) : step.count);
    if (upto > restTaken) {
      push(at, true, upto - restTaken, typeof step === 'number' ? `${step}%${rested}` : `${step.count} targets${rested}`);
      restTaken = upto;
    }
  });
  if (restTaken < rest) push(rollout.steps.length, true, rest - restTaken, withCohorts ? 'the rest' : '100%');
  return { limits, plan };
}

function cohortLabel(where: Readonly<Record<string, string | number | readonly (string | number)[]>>): string {
  return Object.entries(where)
    .map(([field, v]) => `${field}=${(Array.isArray(v) ? v : [v]).join('|')}`)
    .join(' ');
}

const checkedSpecSchema = specSchema.superRefine((spec, ctx) => {
  const timeout = typeof spec.connection === 'string' ? undefined : spec.connection.timeoutMs;
  const budget = (timeout ?? DEFAULTS.callTimeoutMs) * spec.retry.attempts;
  if (budget > DEFAULTS.maxTargetCallBudgetMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['retry', 'attempts'],
      message: `connection.timeoutMs x retry.attempts is ${budget} ms, over the bound of ${DEFAULTS.maxTargetCallBudgetMs} ms per target`,
    });
  }
  if (spec.rollout?.onBreach === 'undo') {
    if (spec.rollout.maxFailureRatio === undefined) {
      ctx.addIssue({ code: 'custom', path: ['rollout', 'onBreach'], message: 'needs rollout.maxFailureRatio: without a failure budget nothing breaches it' });
    }
    if (!spec.undo) ctx.addIssue({ code: 'custom', path: ['rollout', 'onBreach'], message: '"undo" needs undo: true (the data an undo reverts from)' });
  }
  const t = spec.targets;
  if (t === undefined || Array.isArray(t)) return;
  if (spec.operation.type !== 'conductor.upgradeExecution') {
    ctx.addIssue({ code: 'custom', path: ['targets', 'discover'], message: 'discovery is for conductor.upgradeExecution only' });
  }
  if (spec.rollout !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['rollout'], message: 'a staged rollout needs the target count up front: list the targets instead of discovering them' });
  }
  // Discovered targets hold only their workflowId: no page could resolve a per-target zone.
  if (spec.schedule !== undefined && TARGET_ZONE.test(spec.schedule.timezone)) {
    ctx.addIssue({ code: 'custom', path: ['schedule', 'timezone'], message: 'a per-target zone needs the targets listed: discovered targets carry only their workflowId' });
  }
});

/**
 * The path of the first value JSON cannot hold (a cycle, a BigInt, a function) in what a library
 * caller passed, or undefined. The spec is stored as JSON, so it must survive the round trip.
 */
function notJson(value: unknown, path: PropertyKey[] = [], seen = new Set<object>()): PropertyKey[] | undefined {
  if (typeof value === 'bigint' || typeof value === 'function' || typeof value === 'symbol') return path;
  if (typeof value !== 'object' || value === null) return undefined;
  if (seen.has(value)) return path;
  seen.add(value);
  for (const [k, v] of Object.entries(value)) {
    const bad = notJson(v, [...path, Array.isArray(value) ? Number(k) : k], seen);
    if (bad) return bad;
  }
  seen.delete(value);
  return undefined;
}

/**
 * Validates a spec and resolves its connection against the operator's registry. A connection
 * that is not registered is `InputError` `CONNECTION_NOT_REGISTERED` (field `connection`).
 */
export function validateSpec(raw: unknown, source: string, connections: ConnectionRegistry): CampaignSpec {
  const bad = notJson(raw);
  if (bad !== undefined) {
    const message = 'must be JSON data (no cycles, BigInt or functions)';
    throw new InputError(source, message, { field: fieldPath(bad) || 'spec', issues: [{ path: issuePath(bad), message }] });
  }
  const parsed = checkedSpecSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputError(source, issue.message, {
      field: fieldPath(issue.path),
      line: lineOfField(raw, issue.path),
      issues: parsed.error.issues.map((i) => ({ path: issuePath(i.path), message: i.message })),
    });
  }
  const data = parsed.data;
  const connection = resolveConnection(data.connection, connections, data.operation.type, source);
  checkNotifiers(data.notify ?? [], connections, source);
  const { limits, warnings } = applyCeilings(data.limits, connections.connections[connection.name]!);
  return { ...data, connection, limits, ...(warnings.length > 0 ? { warnings } : {}) };
}

function issuePath(path: readonly PropertyKey[]): (string | number)[] {
  return path.map((p) => (typeof p === 'number' ? p : String(p)));
}

/**
 * The spec's JSON Schema (OpenAPI 3.0 dialect, as a request body accepts it: defaulted fields
 * optional), generated from the same zod schema `validateSpec` uses. Refinements that JSON
 * Schema cannot say (increasing rollout steps, limit key placeholders) are checked only by
 * `validateSpec`.
 */
export function specJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(specSchema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

/** Inline targets have no line of their own in the NDJSON sense: report their 1-based index. */
function lineOfField(_raw: unknown, path: readonly PropertyKey[]): number | undefined {
  return path[0] === 'targets' && typeof path[1] === 'number' ? path[1] + 1 : undefined;
}

function jsonErrorLine(text: string, err: unknown): number | undefined {
  const m = /position (\d+)/.exec((err as Error).message);
  if (!m) return undefined;
  return text.slice(0, Number(m[1])).split('\n').length;
}

// Target ids become path segments or query values on the platforms. Everything printable is
// allowed (and percent-encoded on the way out) except what could change a request's shape.
const targetId = z
  .string({ error: 'must be a string' })
  .min(1, 'must not be empty')
  .max(512, 'must be at most 512 characters')
  .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'must not contain control characters')
  .regex(/^[^/\\]*$/, 'must not contain "/" or "\\"')
  .refine((s) => s !== '.' && s !== '..', 'must not be "." or ".."')
  // A lone surrogate would be sent as U+FFFD, naming another target than the one reported.
  .refine(isWellFormed, 'must be well-formed Unicode (no lone surrogates)');

const extraValue = z.union([z.string().max(1024), z.number().refine(Number.isFinite, 'must be a finite number')], {
  error: 'extra target fields must be strings or numbers',
});

const targetSchemas = new Map<string, z.ZodType<Target>>();

export function targetSchemaFor(op: OperationModule): z.ZodType<Target> {
  let schema = targetSchemas.get(op.type);
  if (!schema) {
    schema = z
      .object({ [op.targetIdField]: targetId, ...(op.targetFields ?? {}) })
      .catchall(extraValue) as z.ZodType<Target>;
    targetSchemas.set(op.type, schema);
  }
  return schema;
}

/** Validates one target; `line` is the 1-based NDJSON line (or inline index) for the message. */
export function validateTarget(raw: unknown, operationType: string, source: string, line: number): Target {
  const op = operationFor(operationType);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    const message = `a target must be a JSON object with "${op.targetIdField}"`;
    throw new InputError(source, message, { line, issues: [{ path: [], message }] });
  }
  const parsed = targetSchemaFor(op).safeParse(raw);
  if (!parsed.success) {
    const messageOf = (issue: z.core.$ZodIssue): string =>
      issue.code === 'invalid_type' && (raw as Record<string, unknown>)[fieldPath(issue.path) || op.targetIdField] === undefined
        ? `is required for ${op.type}`
        : issue.message;
    const issue = parsed.error.issues[0]!;
    const field = fieldPath(issue.path) || op.targetIdField;
    throw new InputError(source, messageOf(issue), {
      line,
      field,
      issues: parsed.error.issues.map((i) => ({ path: issuePath(i.path.length > 0 ? i.path : [op.targetIdField]), message: messageOf(i) })),
    });
  }
  return parsed.data;
}

/** Parses one NDJSON line into a target. Blank lines are the caller's to skip. */
export function parseTargetLine(text: string, operationType: string, source: string, line: number): Target {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(source, `not valid JSON: ${(err as Error).message}`, { line });
  }
  return validateTarget(raw, operationType, source, line);
}
