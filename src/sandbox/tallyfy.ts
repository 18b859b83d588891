/**
 * Tallyfy: `PUT /organizations/{org_id}/runs/{run_id}`, a partial update of a process run, and
 * `GET` of the same path ("get a process run"), which an update that keeps undo data reads first.
 * Tallyfy is a Laravel API: route binding (404) and authorization (403) come before body
 * validation (422, `{"message","errors":{field:[...]}}`), as in Laravel.
 */
import { z } from 'zod';
import {
  acceptsJson,
  compositeKey,
  hasAuthScheme,
  header,
  isJsonContentType,
  isPlainObject,
  isStringArray,
  parseJson,
  type HandlerEnv,
  type Operation,
  type PlatformRequest,
  type Reply,
  type Route,
  type SandboxPlatform,
} from './http.js';

export interface TallyfyRunFixture {
  orgId: string;
  id: string;
  name: string;
  summary?: string;
  owner_id?: number;
  tags?: string[];
  folders?: string[];
  prerun?: unknown[];
  /** The key may not update this run: 403. */
  forbidden?: boolean;
  /** Set by the sandbox on every update (ISO time). */
  last_updated?: string;
}

export interface TallyfyFixtures {
  runs?: TallyfyRunFixture[];
}

const fixtures: z.ZodType<TallyfyFixtures> = z.strictObject({
  runs: z
    .array(
      z.strictObject({
        orgId: z.string(),
        id: z.string(),
        name: z.string(),
        summary: z.string().optional(),
        owner_id: z.number().int().optional(),
        tags: z.array(z.string()).optional(),
        folders: z.array(z.string()).optional(),
        prerun: z.array(z.unknown()).optional(),
        forbidden: z.boolean().optional(),
        last_updated: z.string().optional(),
      }),
    )
    .optional(),
});

/** compositeKey(orgId, runId) -> run */
type TallyfyState = Map<string, TallyfyRunFixture>;

const error = (_status: number, message: string): unknown => ({ message });

const fail = (status: number, message: string): Reply => ({ status, body: error(status, message) });

export const tallyfyTarget = (orgId: string, runId: string): string => `tallyfy:${orgId}:${runId}`;

/** The updatable fields the doc lists, each with its type check. Nothing else is accepted. */
const FIELDS: Record<string, { valid: (v: unknown) => boolean; expected: string }> = {
  name: { valid: (v) => typeof v === 'string', expected: 'a string' },
  summary: { valid: (v) => typeof v === 'string', expected: 'a string' },
  owner_id: { valid: (v) => Number.isInteger(v), expected: 'an integer' },
  tags: { valid: isStringArray, expected: 'an array of strings' },
  folders: { valid: isStringArray, expected: 'an array of strings' },
  prerun: { valid: Array.isArray, expected: 'an array' },
};

type RunUpdate = Partial<Pick<TallyfyRunFixture, 'name' | 'summary' | 'owner_id' | 'tags' | 'folders' | 'prerun'>>;

/** Laravel-style validation: every problem, grouped by field. */
function validateUpdate(v: unknown): { update: RunUpdate } | { errors: Record<string, string[]> } {
  if (!isPlainObject(v)) return { errors: { body: ['The body must be a JSON object.'] } };
  const errors: Record<string, string[]> = {};
  for (const [field, value] of Object.entries(v)) {
    const rule = Object.hasOwn(FIELDS, field) ? FIELDS[field] : undefined; // not 'constructor' & co.
    if (!rule) errors[field] = [`The ${field} field is not updatable.`];
    else if (!rule.valid(value)) errors[field] = [`The ${field} must be ${rule.expected}.`];
  }
  if (Object.keys(v).length === 0) {
    errors.body = [`At least one of ${Object.keys(FIELDS).join(', ')} is required.`];
  }
  return Object.keys(errors).length > 0 ? { errors } : { update: v as RunUpdate };
}

function unprocessable(errors: Record<string, string[]>): Reply {
  const all = Object.values(errors).flat();
  const more = all.length > 1 ? ` (and ${all.length - 1} more error${all.length > 2 ? 's' : ''})` : '';
  return { status: 422, body: { message: `${all[0] ?? 'The given data was invalid.'}${more}`, errors } };
}

/** The run as Tallyfy shows it: its own fields, not the sandbox's flags. */
function view(run: TallyfyRunFixture): Record<string, unknown> {
  const { orgId: _org, forbidden: _forbidden, ...visible } = run;
  return structuredClone(visible);
}

/** The checks every Tallyfy request meets first: credential, client header, JSON answers. */
function refused(req: PlatformRequest, env: HandlerEnv<TallyfyState>): Reply | undefined {
  if (!hasAuthScheme(req, 'bearer', env.key)) return fail(401, 'Unauthenticated.');
  if (header(req, 'x-tallyfy-client') !== 'APIClient') return fail(400, 'X-Tallyfy-Client header must be APIClient');
  if (!acceptsJson(req)) return fail(406, 'Accept must include application/json');
  return undefined;
}

/** The addressed run, or its route binding's 404 / authorization's 403. */
function lookupRun(req: PlatformRequest, env: HandlerEnv<TallyfyState>): TallyfyRunFixture | Reply {
  const run = env.state.get(compositeKey(req.params.orgId!, req.params.runId!));
  if (!run) return fail(404, 'not found');
  if (run.forbidden) return fail(403, 'This action is unauthorized.');
  return run;
}

const updateRun: Operation<TallyfyState> = {
  target: (req) => tallyfyTarget(req.params.orgId!, req.params.runId!),
  handle(req, env) {
    const denied = refused(req, env);
    if (denied) return denied;
    if (!isJsonContentType(req)) return fail(415, 'Content-Type must be application/json');
    const parsed = parseJson(req.body);
    if (!parsed.ok) return fail(400, parsed.message);

    const run = lookupRun(req, env);
    if ('status' in run) return run;

    const checked = validateUpdate(parsed.value);
    if ('errors' in checked) return unprocessable(checked.errors);

    Object.assign(run, structuredClone(checked.update), { last_updated: new Date().toISOString() });
    env.applied(tallyfyTarget(req.params.orgId!, req.params.runId!));
    return { status: 200, body: { data: view(run) } };
  },
};

/** `GET /organizations/{org_id}/runs/{run_id}`: Tallyfy's "get a process run", the run under `data`. */
const getRun: Operation<TallyfyState> = {
  target: (req) => tallyfyTarget(req.params.orgId!, req.params.runId!),
  handle(req, env) {
    const run = refused(req, env) ?? lookupRun(req, env);
    return 'status' in run ? run : { status: 200, body: { data: view(run) } };
  },
};

const routes: Route<TallyfyState>[] = [{ pattern: ['organizations', ':orgId', 'runs', ':runId'], methods: { GET: getRun, PUT: updateRun } }];

export const tallyfySandbox: SandboxPlatform<'tallyfy', TallyfyState, TallyfyFixtures> = {
  name: 'tallyfy',
  defaultKey: 'sandbox-tallyfy-key',
  fixtures,
  createState: () => new Map(),
  load(state, f) {
    for (const r of f.runs ?? []) state.set(compositeKey(r.orgId, r.id), r);
  },
  clear: (state) => state.clear(),
  snapshot: (state) => ({ runs: [...state.values()] }),
  error,
  routes,
};
