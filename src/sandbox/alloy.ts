/**
 * Alloy Embedded (API 2025-09): `PUT /workflows/{workflowId}/upgrade?userId=`.
 * The doc names only 200 `{"upgraded":true}` and 400 `{}` (new configurable fields: reinstall).
 * 401/403/404 are the sandbox's choice for what the doc leaves open.
 */
import { hasAuthScheme, header, type Operation, type Platform, type Route } from './http.js';
import { compositeKey } from './state.js';

const API_VERSION = '2025-09';

const alloy: Platform = {
  name: 'alloy',
  error: (_status, message) => ({ message }),
};

export function alloyTarget(workflowId: string, userId: string): string {
  return `alloy:${workflowId}:${userId}`;
}

const upgrade: Operation = {
  target(req) {
    const userId = req.query.get('userId');
    return userId ? alloyTarget(req.params.workflowId!, userId) : undefined;
  },

  handle(req, env) {
    // Checked in the order a gateway would: who you are, which API, then what you ask for.
    if (!hasAuthScheme(req, 'bearer', env.keys.alloy)) return { status: 401, body: { message: 'Unauthorized' } };
    if (header(req, 'x-api-version') !== API_VERSION) {
      return { status: 400, body: { message: 'unsupported x-api-version' } };
    }
    const userId = req.query.get('userId');
    if (!userId) return { status: 400, body: { message: 'userId query parameter is required' } };

    const workflowId = req.params.workflowId!;
    const workflow = env.state.alloyWorkflows.get(workflowId);
    const install = env.state.alloyInstalls.get(compositeKey(workflowId, userId));
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

export const alloyRoutes: Route[] = [
  { pattern: ['workflows', ':workflowId', 'upgrade'], platform: alloy, methods: { PUT: upgrade } },
];
