/**
 * Alloy Embedded (API 2025-09): `PUT /workflows/{workflowId}/upgrade?userId=`.
 * The doc names only 200 `{"upgraded":true}` and 400 `{}` (new configurable fields: reinstall).
 * 401/403/404 are the sandbox's choice for what the doc leaves open.
 */
import { z } from 'zod';
import { compositeKey, hasAuthScheme, header, type Operation, type Route, type SandboxPlatform } from './http.js';

const API_VERSION = '2025-09';

export interface AlloyInstallFixture {
  workflowId: string;
  userId: string;
  version: number;
  /** The new version added configurable fields: Alloy refuses with 400 and the user must reinstall. */
  reinstallRequired?: boolean;
  /** The key may not touch this install: 403. */
  forbidden?: boolean;
}

export interface AlloyFixtures {
  workflows?: Record<string, { latestVersion: number }>;
  installs?: AlloyInstallFixture[];
}

const int = z.number().int();

const fixtures: z.ZodType<AlloyFixtures> = z.strictObject({
  workflows: z.record(z.string(), z.strictObject({ latestVersion: int })).optional(),
  installs: z
    .array(
      z.strictObject({
        workflowId: z.string(),
        userId: z.string(),
        version: int,
        reinstallRequired: z.boolean().optional(),
        forbidden: z.boolean().optional(),
      }),
    )
    .optional(),
});

interface AlloyState {
  readonly workflows: Map<string, { latestVersion: number }>;
  /** compositeKey(workflowId, userId) -> install */
  readonly installs: Map<string, AlloyInstallFixture>;
}

export function alloyTarget(workflowId: string, userId: string): string {
  return `alloy:${workflowId}:${userId}`;
}

const upgrade: Operation<AlloyState> = {
  target(req) {
    const userId = req.query.get('userId');
    return userId ? alloyTarget(req.params.workflowId!, userId) : undefined;
  },

  handle(req, env) {
    // Checked in the order a gateway would: who you are, which API, then what you ask for.
    if (!hasAuthScheme(req, 'bearer', env.key)) return { status: 401, body: { message: 'Unauthorized' } };
    if (header(req, 'x-api-version') !== API_VERSION) {
      return { status: 400, body: { message: 'unsupported x-api-version' } };
    }
    const userId = req.query.get('userId');
    if (!userId) return { status: 400, body: { message: 'userId query parameter is required' } };

    const workflowId = req.params.workflowId!;
    const workflow = env.state.workflows.get(workflowId);
    const install = env.state.installs.get(compositeKey(workflowId, userId));
    if (!workflow || !install) return { status: 404, body: { message: 'not found' } };
    if (install.forbidden) return { status: 403, body: { message: 'Forbidden' } };
    // Exactly the documented 400: an empty object, no hint. Clients must not expect a message.
    if (install.reinstallRequired) return { status: 400, body: {} };

    // Already on latest still answers upgraded:true: Alloy documents no other answer.
    install.version = workflow.latestVersion;
    env.applied(alloyTarget(workflowId, userId));
    return { status: 200, body: { upgraded: true } };
  },
};

const routes: Route<AlloyState>[] = [{ pattern: ['workflows', ':workflowId', 'upgrade'], methods: { PUT: upgrade } }];

export const alloySandbox: SandboxPlatform<'alloy', AlloyState, AlloyFixtures> = {
  name: 'alloy',
  defaultKey: 'sandbox-alloy-key',
  fixtures,
  createState: () => ({ workflows: new Map(), installs: new Map() }),
  load(state, f) {
    for (const [id, wf] of Object.entries(f.workflows ?? {})) state.workflows.set(id, wf);
    for (const i of f.installs ?? []) state.installs.set(compositeKey(i.workflowId, i.userId), i);
  },
  clear(state) {
    state.workflows.clear();
    state.installs.clear();
  },
  snapshot: (state) => ({ workflows: Object.fromEntries(state.workflows), installs: [...state.installs.values()] }),
  error: (_status, message) => ({ message }),
  routes,
};
