/**
 * Nected (dev v1): read and replace a workflow graph, with optimistic locking by `checksum`.
 * Errors are `{"code","message","data":null}`. The status of a stale checksum is not documented:
 * `conflictStatus` picks 409 CONFLICT or 400 CHECKSUM_MISMATCH (whose message names the checksum).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  compositeKey,
  header,
  isJsonContentType,
  isPlainObject,
  jsonType,
  parseJson,
  type HandlerEnv,
  type Operation,
  type PlatformConfig,
  type PlatformRequest,
  type Reply,
  type Route,
  type SandboxPlatform,
} from './http.js';

export interface NectedWorkflowFixture {
  entityId: string;
  /** `Nected-Branch` header value; absent or "" = default branch. */
  branch?: string;
  /** name, description, startNode, nodes, edges, trigger, settings, ... (no checksum, no entityId). */
  graph: Record<string, unknown>;
  /** Computed from the graph when absent. */
  checksum?: string;
}

export interface NectedFixtures {
  workflows?: NectedWorkflowFixture[];
}

const fixtures: z.ZodType<NectedFixtures> = z.strictObject({
  workflows: z
    .array(
      z.strictObject({
        entityId: z.string(),
        branch: z.string().optional(),
        graph: z.record(z.string(), z.unknown()),
        checksum: z.string().optional(),
      }),
    )
    .optional(),
});

export interface NectedOptions {
  /** Share of Nected PATCHes that meet a simulated concurrent edit just before the checksum check. */
  conflictRate: number;
  /** Status for a stale Nected checksum; the docs leave it open (409, or 400 naming the checksum). */
  conflictStatus: 409 | 400;
}

const config: PlatformConfig<NectedOptions> = {
  shape: { conflictRate: z.number().min(0).max(1), conflictStatus: z.union([z.literal(409), z.literal(400)]) },
  defaults: { conflictRate: 0, conflictStatus: 409 },
};

interface NectedWorkflow {
  entityId: string;
  branch: string;
  graph: Record<string, unknown>;
  checksum: string;
}

class NectedState {
  /** compositeKey(branch, entityId) -> workflow */
  readonly workflows = new Map<string, NectedWorkflow>();
  /**
   * Feeds every checksum. Never reset, so a checksum once handed out is never handed out again
   * for a different revision, even across `reset()`/`load()` (a client holding an old one must
   * always be refused).
   */
  private revision = 0;

  /** sha256 of the graph plus a revision number: it changes on every write, even an identical one. */
  nextChecksum(graph: Record<string, unknown>): string {
    this.revision += 1;
    return createHash('sha256').update(`${JSON.stringify(graph)}\n${this.revision}`).digest('hex');
  }
}

type Env = HandlerEnv<NectedState, NectedOptions>;

/** Nected returns entityId and checksum beside the graph; they are not part of the stored graph. */
function stripNectedMeta(doc: Record<string, unknown>): Record<string, unknown> {
  const { checksum: _checksum, entityId: _entityId, ...graph } = doc;
  return graph;
}

const CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

const error = (status: number, message: string): unknown => ({ code: CODES[status] ?? 'INTERNAL_ERROR', message, data: null });

const fail = (status: number, message: string): Reply => ({ status, body: error(status, message) });

const STALE_MESSAGE = 'checksum mismatch: workflow was modified';

/** Absent header = default branch, stored as "". */
const branchOf = (req: PlatformRequest): string => header(req, 'nected-branch') ?? '';

export const nectedTarget = (branch: string, entityId: string): string => `nected:${branch}:${entityId}`;

const target = (req: PlatformRequest): string => nectedTarget(branchOf(req), req.params.entityId!);

function unauthorized(req: PlatformRequest, env: Env): Reply | undefined {
  return header(req, 'nected-api-key') === env.key ? undefined : fail(401, 'invalid or missing Nected-API-Key');
}

function lookup(req: PlatformRequest, env: Env): NectedWorkflow | undefined {
  return env.state.workflows.get(compositeKey(branchOf(req), req.params.entityId!));
}

/* GET /dev/v1/workflow/{entity-id} -------------------------------------------------------------- */

const getWorkflow: Operation<NectedState, NectedOptions> = {
  target,
  handle(req, env) {
    const denied = unauthorized(req, env);
    if (denied) return denied;
    const wf = lookup(req, env);
    if (!wf) return fail(404, 'workflow not found');
    const data = { ...structuredClone(wf.graph), entityId: wf.entityId, checksum: wf.checksum };
    return { status: 200, body: { code: 'success', message: '', data } };
  },
};

/* PATCH /dev/v1/workflow/{entity-id} ------------------------------------------------------------ */

/** What the server needs to replace the whole graph; a partial document is refused. */
const REQUIRED: ReadonlyArray<[string, (v: unknown) => boolean, string]> = [
  ['checksum', (v) => typeof v === 'string', 'a string'],
  ['name', (v) => typeof v === 'string', 'a string'],
  ['nodes', Array.isArray, 'an array'],
  ['edges', Array.isArray, 'an array'],
];

/** Optional properties the OpenAPI document types; a wrong type is refused like a typed backend would. */
const TYPED: ReadonlyArray<[string, (v: unknown) => boolean, string]> = [
  ['description', (v) => typeof v === 'string', 'a string'],
  ['startNode', (v) => typeof v === 'string', 'a string'],
  ['comment', (v) => typeof v === 'string', 'a string'],
  ['isEnabled', (v) => typeof v === 'boolean', 'a boolean'],
  ['trigger', isPlainObject, 'an object'],
  ['settings', isPlainObject, 'an object'],
  ['dependencyMap', Array.isArray, 'an array'],
];

function validateGraph(doc: unknown): string | undefined {
  if (!isPlainObject(doc)) return `full workflow graph required: body must be an object, got ${jsonType(doc)}`;
  for (const [field, valid, expected] of REQUIRED) {
    if (doc[field] === undefined) return `full workflow graph required: missing ${field}`;
    if (!valid(doc[field])) return `full workflow graph required: ${field} must be ${expected}`;
  }
  for (const [field, valid, expected] of TYPED) {
    if (doc[field] !== undefined && !valid(doc[field])) return `${field} must be ${expected}`;
  }
  return undefined;
}

/** Another writer saves the workflow first: the graph and its checksum move under the caller. */
function simulateConcurrentEdit(wf: NectedWorkflow, env: Env): void {
  const n = env.conflictInjected();
  wf.graph = { ...wf.graph, description: `concurrent edit ${n}` };
  wf.checksum = env.state.nextChecksum(wf.graph);
}

function staleChecksum(env: Env): Reply {
  if (env.config.conflictStatus === 400) {
    return { status: 400, body: { code: 'CHECKSUM_MISMATCH', message: STALE_MESSAGE, data: null } };
  }
  return { status: 409, body: { code: 'CONFLICT', message: STALE_MESSAGE, data: null } };
}

const updateWorkflow: Operation<NectedState, NectedOptions> = {
  target,
  handle(req, env) {
    const denied = unauthorized(req, env);
    if (denied) return denied;
    if (!isJsonContentType(req)) return fail(415, 'Content-Type must be application/json');
    const parsed = parseJson(req.body);
    if (!parsed.ok) return fail(400, parsed.message);
    const invalid = validateGraph(parsed.value);
    if (invalid) return fail(400, invalid);
    const doc = parsed.value as Record<string, unknown> & { checksum: string };

    const wf = lookup(req, env);
    if (!wf) return fail(404, 'workflow not found');

    if (env.faults.concurrentEdit(env.config.conflictRate)) simulateConcurrentEdit(wf, env);
    if (doc.checksum !== wf.checksum) return staleChecksum(env);

    // The server replaces the entire stored graph: fields the client left out are gone.
    wf.graph = structuredClone(stripNectedMeta(doc));
    wf.checksum = env.state.nextChecksum(wf.graph);
    env.applied(target(req));
    return { status: 200, body: { code: 'success', message: 'workflow updated', data: { checksum: wf.checksum } } };
  },
};

const routes: Route<NectedState, NectedOptions>[] = [
  { pattern: ['dev', 'v1', 'workflow', ':entityId'], methods: { GET: getWorkflow, PATCH: updateWorkflow } },
];

export const nectedSandbox: SandboxPlatform<'nected', NectedState, NectedFixtures, NectedOptions> = {
  name: 'nected',
  defaultKey: 'sandbox-nected-key',
  fixtures,
  createState: () => new NectedState(),
  load(state, f) {
    for (const w of f.workflows ?? []) {
      const branch = w.branch ?? '';
      const graph = stripNectedMeta(w.graph);
      const checksum = w.checksum ?? state.nextChecksum(graph);
      state.workflows.set(compositeKey(branch, w.entityId), { entityId: w.entityId, branch, graph, checksum });
    }
  },
  clear: (state) => state.workflows.clear(),
  snapshot: (state) => ({ workflows: [...state.workflows.values()] }),
  error,
  config,
  routes,
};
