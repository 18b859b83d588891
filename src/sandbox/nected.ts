/**
 * Nected (dev v1): read and replace a workflow graph, with optimistic locking by `checksum`.
 * Errors are `{"code","message","data":null}`. The status of a stale checksum is not documented:
 * `conflictStatus` picks 409 CONFLICT or 400 CHECKSUM_MISMATCH (whose message names the checksum).
 */
import {
  header,
  isJsonContentType,
  isPlainObject,
  jsonType,
  parseJson,
  type HandlerEnv,
  type Operation,
  type Platform,
  type PlatformRequest,
  type Reply,
  type Route,
} from './http.js';
import { compositeKey, stripNectedMeta, type NectedWorkflow } from './state.js';

const CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

const nected: Platform = {
  name: 'nected',
  error: (status, message) => ({ code: CODES[status] ?? 'INTERNAL_ERROR', message, data: null }),
};

const fail = (status: number, message: string): Reply => ({ status, body: nected.error(status, message) });

const STALE_MESSAGE = 'checksum mismatch: workflow was modified';

/** Absent header = default branch, stored as "". */
const branchOf = (req: PlatformRequest): string => header(req, 'nected-branch') ?? '';

export const nectedTarget = (branch: string, entityId: string): string => `nected:${branch}:${entityId}`;

const target = (req: PlatformRequest): string => nectedTarget(branchOf(req), req.params.entityId!);

function unauthorized(req: PlatformRequest, env: HandlerEnv): Reply | undefined {
  return header(req, 'nected-api-key') === env.keys.nected ? undefined : fail(401, 'invalid or missing Nected-API-Key');
}

function lookup(req: PlatformRequest, env: HandlerEnv): NectedWorkflow | undefined {
  return env.state.nectedWorkflows.get(compositeKey(branchOf(req), req.params.entityId!));
}

/* GET /dev/v1/workflow/{entity-id} -------------------------------------------------------------- */

const getWorkflow: Operation = {
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
function simulateConcurrentEdit(wf: NectedWorkflow, env: HandlerEnv): void {
  const n = env.conflictInjected();
  wf.graph = { ...wf.graph, description: `concurrent edit ${n}` };
  wf.checksum = env.state.nextChecksum(wf.graph);
}

function staleChecksum(env: HandlerEnv): Reply {
  if (env.config.conflictStatus === 400) {
    return { status: 400, body: { code: 'CHECKSUM_MISMATCH', message: STALE_MESSAGE, data: null } };
  }
  return { status: 409, body: { code: 'CONFLICT', message: STALE_MESSAGE, data: null } };
}

const updateWorkflow: Operation = {
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

    if (env.faults.concurrentEdit(env.config)) simulateConcurrentEdit(wf, env);
    if (doc.checksum !== wf.checksum) return staleChecksum(env);

    // The server replaces the entire stored graph: fields the client left out are gone.
    wf.graph = structuredClone(stripNectedMeta(doc));
    wf.checksum = env.state.nextChecksum(wf.graph);
    env.applied(target(req));
    return { status: 200, body: { code: 'success', message: 'workflow updated', data: { checksum: wf.checksum } } };
  },
};

export const nectedRoutes: Route[] = [
  {
    pattern: ['dev', 'v1', 'workflow', ':entityId'],
    platform: nected,
    methods: { GET: getWorkflow, PATCH: updateWorkflow },
  },
];
