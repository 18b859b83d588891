/**
 * Conductor (Orkes): execution read and upgrade, definition read and update.
 * Errors are `{"status":N,"message":"...","retryable":false}` as Conductor answers them.
 * The upgrade doc names only 200 and 400; 404/409 for a missing or ended execution are the
 * sandbox's choice, following Conductor's usual statuses.
 */
import {
  isJsonContentType,
  isPlainObject,
  jsonType,
  parseJson,
  type HandlerEnv,
  type Operation,
  type PlatformRequest,
  type Reply,
  type Route,
  type SandboxPlatform,
} from './http.js';
import { ConductorState, fixtures, type ConductorDefinitionFixture, type ConductorFixtures } from './conductor-state.js';

export type { ConductorDefinitionFixture, ConductorExecutionFixture, ConductorStatus } from './conductor-state.js';

const error = (status: number, message: string): unknown => ({ status, message, retryable: false });

const fail = (status: number, message: string): Reply => ({ status, body: error(status, message) });

export const execTarget = (id: string): string => `conductor:exec:${id}`;
export const defTarget = (name: string): string => `conductor:def:${name}`;

/** Every Conductor call starts here: `X-Authorization: <key>`, exact. */
function unauthorized(req: PlatformRequest, env: HandlerEnv<ConductorState>): Reply | undefined {
  if (req.headers['x-authorization'] !== env.key) {
    return { status: 401, body: { message: 'Unauthorized', retryable: false } };
  }
  return undefined;
}

/**
 * Spring-style boolean query parameter: absent -> fallback, 'true'/'false' (any case) -> value,
 * anything else -> a 400 message.
 */
function booleanParam(query: URLSearchParams, name: string, fallback: boolean): boolean | string {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (/^true$/i.test(raw)) return true;
  if (/^false$/i.test(raw)) return false;
  return `query parameter ${name} must be true or false`;
}

/** Reads a JSON body the way Conductor's controllers need it: 415 on a non-JSON type, 400 on bad JSON. */
function jsonBody(req: PlatformRequest): { value: unknown } | Reply {
  if (!isJsonContentType(req)) return fail(415, 'Content-Type must be application/json');
  const parsed = parseJson(req.body);
  return parsed.ok ? { value: parsed.value } : fail(400, parsed.message);
}

const isReply = (x: object): x is Reply => 'status' in x;

/* GET /api/workflow/{id}?includeTasks= -------------------------------------------------------- */

const getExecution: Operation<ConductorState> = {
  target: (req) => execTarget(req.params.id!),
  handle(req, env) {
    const denied = unauthorized(req, env);
    if (denied) return denied;
    const includeTasks = booleanParam(req.query, 'includeTasks', true);
    if (typeof includeTasks === 'string') return fail(400, includeTasks);

    const exec = env.state.executions.get(req.params.id!);
    if (!exec) return fail(404, `No such workflow found by id: ${req.params.id!}`);

    const { taskOutput, ...rest } = exec;
    const body: Record<string, unknown> = { ...structuredClone(rest), output: {} };
    // Upgrades mark the tasks before the current one SKIPPED with the given outputs; that is
    // all this sandbox knows of tasks.
    if (includeTasks) {
      body.tasks = Object.entries(taskOutput).map(([ref, outputData]) => ({
        referenceTaskName: ref,
        status: 'SKIPPED',
        outputData: structuredClone(outputData),
      }));
    }
    return { status: 200, body };
  },
};

/* POST /api/workflow/{id}/upgrade ---------------------------------------------------------------- */

interface UpgradeBody {
  name: string;
  version: number;
  taskOutput?: Record<string, unknown>;
  workflowInput?: Record<string, unknown>;
}

/** The documented request body, nothing more: an unknown property is a client bug worth a 400. */
function validateUpgradeBody(v: unknown): UpgradeBody | string {
  if (!isPlainObject(v)) return `request body must be an object, got ${jsonType(v)}`;
  const allowed = new Set(['name', 'version', 'taskOutput', 'workflowInput']);
  const unknown = Object.keys(v).filter((k) => !allowed.has(k));
  if (unknown.length > 0) return `unrecognized field(s): ${unknown.join(', ')}`;
  const { name, version, taskOutput, workflowInput } = v;
  if (typeof name !== 'string' || name === '') return 'name is required and must be a non-empty string';
  if (typeof version !== 'number' || !Number.isInteger(version)) return 'version is required and must be an integer';
  if (taskOutput !== undefined && !isPlainObject(taskOutput)) return 'taskOutput must be an object';
  if (workflowInput !== undefined && !isPlainObject(workflowInput)) return 'workflowInput must be an object';
  return { name, version, taskOutput, workflowInput };
}

const upgradeExecution: Operation<ConductorState> = {
  target: (req) => execTarget(req.params.id!),
  handle(req, env) {
    const denied = unauthorized(req, env);
    if (denied) return denied;
    const read = jsonBody(req);
    if (isReply(read)) return read;
    const body = validateUpgradeBody(read.value);
    if (typeof body === 'string') return fail(400, body);

    const id = req.params.id!;
    const exec = env.state.executions.get(id);
    if (!exec) return fail(404, `No such workflow found by id: ${id}`);
    if (exec.status !== 'RUNNING' && exec.status !== 'PAUSED') return fail(409, 'workflow is not running');
    if (body.name !== exec.workflowName) {
      return fail(400, `workflow name mismatch: execution runs ${exec.workflowName}, not ${body.name}`);
    }
    if (!env.state.getDefinition(body.name, body.version)) return fail(400, 'workflow definition not found');

    exec.workflowVersion = body.version;
    Object.assign(exec.input, structuredClone(body.workflowInput ?? {}));
    Object.assign(exec.taskOutput, structuredClone(body.taskOutput ?? {}));
    exec.updateTime = Date.now();
    env.applied(execTarget(id));
    return { status: 200 }; // Conductor answers an empty 200.
  },
};

/* GET /api/metadata/workflow/{name}?version= ----------------------------------------------------- */

const getDefinition: Operation<ConductorState> = {
  target: (req) => defTarget(req.params.name!),
  handle(req, env) {
    const denied = unauthorized(req, env);
    if (denied) return denied;
    const rawVersion = req.query.get('version');
    if (rawVersion !== null && !/^-?\d+$/.test(rawVersion)) return fail(400, 'version must be an integer');
    const version = rawVersion === null ? undefined : Number(rawVersion);

    const name = req.params.name!;
    const def = env.state.getDefinition(name, version);
    if (!def) return fail(404, `No such workflow found by name: ${name}, version: ${rawVersion ?? 'latest'}`);
    return { status: 200, body: structuredClone(def) };
  },
};

/* PUT /api/metadata/workflow?overwrite=&newVersion= ---------------------------------------------- */

/** The fields the doc marks required, with the checks it states. Returns [field, message] on failure. */
function validateDefinition(v: unknown): [string, string] | undefined {
  if (!isPlainObject(v)) return ['body', `request body must be a workflow definition object, got ${jsonType(v)}`];
  if (typeof v.name !== 'string' || v.name === '') return ['name', 'name is required'];
  if (!Array.isArray(v.tasks)) return ['tasks', 'tasks is required and must be an array'];
  if (v.schemaVersion !== 2) return ['schemaVersion', 'schemaVersion must be 2'];
  if (!Number.isInteger(v.timeoutSeconds)) return ['timeoutSeconds', 'timeoutSeconds is required and must be an integer'];
  if (typeof v.ownerEmail !== 'string' || !v.ownerEmail.includes('@')) {
    return ['ownerEmail', 'ownerEmail is required and must be an email address'];
  }
  if (v.version !== undefined && !Number.isInteger(v.version)) return ['version', 'version must be an integer'];
  return undefined;
}

function definitionName(req: PlatformRequest): string | undefined {
  const parsed = parseJson(req.body);
  return parsed.ok && isPlainObject(parsed.value) && typeof parsed.value.name === 'string'
    ? parsed.value.name
    : undefined;
}

const putDefinition: Operation<ConductorState> = {
  target(req) {
    const name = definitionName(req);
    return name === undefined ? undefined : defTarget(name);
  },
  handle(req, env) {
    const denied = unauthorized(req, env);
    if (denied) return denied;
    // The doc gives overwrite a default of true and newVersion a default of false.
    const overwrite = booleanParam(req.query, 'overwrite', true);
    if (typeof overwrite === 'string') return fail(400, overwrite);
    const newVersion = booleanParam(req.query, 'newVersion', false);
    if (typeof newVersion === 'string') return fail(400, newVersion);

    const read = jsonBody(req);
    if (isReply(read)) return read;
    const invalid = validateDefinition(read.value);
    if (invalid) {
      const [path, message] = invalid;
      return { status: 400, body: { ...(error(400, message) as object), validationErrors: [{ path, message }] } };
    }
    const def = structuredClone(read.value) as ConductorDefinitionFixture;

    // newVersion appends after the highest stored version; otherwise the body's version (0 when absent)
    // is written, and replacing an existing one needs overwrite.
    const latest = env.state.latestDefinitionVersion(def.name);
    const version = newVersion ? (latest ?? 0) + 1 : ((def.version as number | undefined) ?? 0);
    const existing = env.state.getDefinition(def.name, version);
    if (existing && !overwrite) return fail(409, `workflow ${def.name} version ${version} already exists`);

    const now = Date.now();
    env.state.putDefinition({ ...def, version, createTime: existing?.createTime ?? def.createTime ?? now, updateTime: now });
    env.applied(defTarget(def.name));
    return { status: 200 };
  },
};

/* GET /api/workflow/search?query=&start=&size=&sort= ----------------------------------------- */

/**
 * The subset of Conductor's query language a fleet search needs: clauses `field IN (a,b)` or
 * `field = a` over workflowType, status, version and workflowId, joined by AND. Anything else is
 * a 400, as an unparseable query is on Conductor.
 */
const SEARCH_FIELDS = new Set(['workflowType', 'status', 'version', 'workflowId']);
const MAX_SEARCH_SIZE = 5000;

function parseSearchQuery(query: string): Map<string, Set<string>> | string {
  const out = new Map<string, Set<string>>();
  if (query.trim() === '') return out;
  for (const clause of query.split(/\s+AND\s+/)) {
    const m = /^\s*(\w+)\s*(?:IN\s*\(([^)]*)\)|=\s*(\S+))\s*$/.exec(clause);
    if (!m) return `cannot parse query clause: ${clause}`;
    const [, field, list, single] = m;
    if (!SEARCH_FIELDS.has(field!)) return `unknown search field: ${field}`;
    const values = (list ?? single!).split(',').map((v) => v.trim()).filter((v) => v !== '');
    if (values.length === 0) return `empty value list for ${field}`;
    out.set(field!, new Set(values));
  }
  return out;
}

function intParam(query: URLSearchParams, name: string, fallback: number): number | string {
  const raw = query.get(name);
  if (raw === null) return fallback;
  return /^\d+$/.test(raw) ? Number(raw) : `query parameter ${name} must be a non-negative integer`;
}

const searchExecutions: Operation<ConductorState> = {
  target: () => undefined,
  handle(req, env) {
    const denied = unauthorized(req, env);
    if (denied) return denied;
    const start = intParam(req.query, 'start', 0);
    if (typeof start === 'string') return fail(400, start);
    const size = intParam(req.query, 'size', 100);
    if (typeof size === 'string') return fail(400, size);
    if (size > MAX_SEARCH_SIZE) return fail(400, `size must be at most ${MAX_SEARCH_SIZE}`);
    const filters = parseSearchQuery(req.query.get('query') ?? '');
    if (typeof filters === 'string') return fail(400, filters);
    const sort = req.query.get('sort');
    if (sort !== null && !/^\w+:(ASC|DESC)$/.test(sort)) return fail(400, 'sort must be <field>:ASC or <field>:DESC');

    const matches = [...env.state.executions.values()].filter((e) => {
      const fields: Record<string, string> = {
        workflowType: e.workflowName,
        status: e.status,
        version: String(e.workflowVersion),
        workflowId: e.workflowId,
      };
      for (const [field, values] of filters) if (!values.has(fields[field]!)) return false;
      return true;
    });
    // Stable order (insertion, i.e. start order) so that pages do not overlap.
    const page = matches.slice(start, start + size).map((e) => ({
      workflowId: e.workflowId,
      workflowType: e.workflowName,
      version: e.workflowVersion,
      status: e.status,
    }));
    return { status: 200, body: { totalHits: matches.length, results: page } };
  },
};

const routes: Route<ConductorState>[] = [
  // Before ':id', which would otherwise take "search" for an execution id.
  { pattern: ['api', 'workflow', 'search'], methods: { GET: searchExecutions } },
  { pattern: ['api', 'workflow', ':id'], methods: { GET: getExecution } },
  { pattern: ['api', 'workflow', ':id', 'upgrade'], methods: { POST: upgradeExecution } },
  { pattern: ['api', 'metadata', 'workflow'], methods: { PUT: putDefinition } },
  { pattern: ['api', 'metadata', 'workflow', ':name'], methods: { GET: getDefinition } },
];

export const conductorSandbox: SandboxPlatform<'conductor', ConductorState, ConductorFixtures> = {
  name: 'conductor',
  defaultKey: 'sandbox-conductor-key',
  fixtures,
  createState: () => new ConductorState(),
  load: (state, f) => state.load(f),
  clear: (state) => state.clear(),
  snapshot: (state) => state.snapshot(),
  checkpoint: (state) => state.checkpoint(),
  error,
  routes,
};
