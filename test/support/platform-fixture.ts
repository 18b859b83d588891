/**
 * A throwaway extra platform, "Acme Flows", added the way docs/ARCHITECTURE.md ("How to add a
 * platform") says, step by step, in this one module and nowhere else. Importing it registers it:
 * import it before anything builds a logger, validates a spec or starts a sandbox.
 *
 * Acme's one call: `POST /acme/v1/flows/{flowId}/migrate` with `X-Acme-Auth: <key>` and
 * `{"toVersion":n}`; it answers `{"migrated":true}`, or `{"migrated":false}` when the flow is
 * already there.
 */
import { z } from 'zod';
import { errorFromResponse, isSuccess, parseJson as parseResponse, registerPlatform, UpshiftError, type OperationModule, type PlatformAdapter } from '../../src/shared/index.js';
import { header, isPlainObject, parseJson as parseRequest, type PlatformConfig, type Reply, type Route, type SandboxPlatform } from '../../src/sandbox/http.js';
import { registerSandboxPlatform } from '../../src/sandbox/index.js';

/* Step 1: the operation (calling side) ------------------------------------------------------ */

const schema = z.strictObject({
  type: z.literal('acme.migrateFlow'),
  toVersion: z.number().int().min(1),
});

export const acmeMigrateFlow: OperationModule<z.infer<typeof schema>> = {
  type: 'acme.migrateFlow',
  schema,
  targetIdField: 'flowId',
  targetKey: (t) => String(t.flowId),

  async apply({ operation, target, send, credential }) {
    const res = await send({
      method: 'POST',
      segments: ['acme', 'v1', 'flows', String(target.flowId), 'migrate'],
      headers: { 'x-acme-auth': credential(), accept: 'application/json' },
      json: { toVersion: operation.toVersion },
    });
    if (!isSuccess(res.status)) throw errorFromResponse(res, 'acme migrate');
    const body = parseResponse(res, 'acme migrate');
    if (!isPlainObject(body) || typeof body.migrated !== 'boolean') {
      throw new UpshiftError('UNEXPECTED_RESPONSE', `acme migrate: unexpected body: ${res.text.slice(0, 200)}`);
    }
    return body.migrated ? { outcome: 'upgraded', reason: 'UPGRADED' } : { outcome: 'skipped', reason: 'ALREADY_CURRENT' };
  },
};

/* Step 2: the platform adapter --------------------------------------------------------------- */

export const acme: PlatformAdapter<'acme'> = {
  name: 'acme',
  secretHeaders: ['x-acme-auth'],
  operations: [acmeMigrateFlow],
};

/* Step 3: the sandbox part -------------------------------------------------------------------- */

export interface AcmeFixtures {
  flows?: { flowId: string; version: number }[];
}

/** flowId -> version */
type AcmeState = Map<string, number>;

interface AcmeOptions {
  /** Acme is in maintenance: every migration is answered 423. */
  acmeLocked: boolean;
}

const config: PlatformConfig<AcmeOptions> = { shape: { acmeLocked: z.boolean() }, defaults: { acmeLocked: false } };

const error = (status: number, message: string): unknown => ({ error: { status, message } });
const fail = (status: number, message: string): Reply => ({ status, body: error(status, message) });

const routes: Route<AcmeState, AcmeOptions>[] = [
  {
    pattern: ['acme', 'v1', 'flows', ':flowId', 'migrate'],
    methods: {
      POST: {
        target: (req) => `acme:${req.params.flowId!}`,
        handle(req, env) {
          if (header(req, 'x-acme-auth') !== env.key) return fail(401, 'bad token');
          if (env.config.acmeLocked) return fail(423, 'maintenance');
          const parsed = parseRequest(req.body);
          if (!parsed.ok || !isPlainObject(parsed.value) || !Number.isInteger(parsed.value.toVersion)) {
            return fail(400, 'body must be {"toVersion": <integer>}');
          }
          const flowId = req.params.flowId!;
          const version = env.state.get(flowId);
          if (version === undefined) return fail(404, `no flow ${flowId}`);
          const toVersion = parsed.value.toVersion as number;
          if (version === toVersion) return { status: 200, body: { migrated: false } };
          env.state.set(flowId, toVersion);
          env.applied(`acme:${flowId}`);
          return { status: 200, body: { migrated: true } };
        },
      },
    },
  },
];

export const acmeSandbox: SandboxPlatform<'acme', AcmeState, AcmeFixtures, AcmeOptions> = {
  name: 'acme',
  defaultKey: 'sandbox-acme-key',
  fixtures: z.strictObject({
    flows: z.array(z.strictObject({ flowId: z.string(), version: z.number().int() })).optional(),
  }),
  createState: () => new Map(),
  load(state, f) {
    for (const flow of f.flows ?? []) state.set(flow.flowId, flow.version);
  },
  clear: (state) => state.clear(),
  snapshot: (state) => ({ flows: [...state].map(([flowId, version]) => ({ flowId, version })) }),
  error,
  config,
  routes,
};

/* Step 4: registration ------------------------------------------------------------------------ */

registerPlatform(acme);
registerSandboxPlatform(acmeSandbox);
