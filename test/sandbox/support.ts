/**
 * What the sandbox's test files share: one raw HTTP call, each platform's accepted headers, and the
 * fixtures and quiet config every test starts from. One module, so the split files cannot drift apart.
 */
import { request, type Dispatcher } from 'undici';
import { defaultConfig, SANDBOX_KEYS, type Sandbox, type SandboxFixtures } from '../../src/sandbox/index.js';

export type Headers = Record<string, string>;

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- test assertions on JSON bodies
}

export async function call(
  base: string,
  method: Dispatcher.HttpMethod,
  path: string,
  opts: { headers?: Headers; body?: unknown } = {},
): Promise<Answer> {
  const body =
    opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const res = await request(base + path, { method, headers: opts.headers ?? {}, body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: text === '' ? undefined : JSON.parse(text) };
}

export function without(headers: Headers, name: string): Headers {
  const { [name]: _dropped, ...rest } = headers;
  return rest;
}

export const ALLOY: Headers = { authorization: `bearer ${SANDBOX_KEYS.alloy}`, 'x-api-version': '2025-09' };
export const CONDUCTOR: Headers = { 'x-authorization': SANDBOX_KEYS.conductor, 'content-type': 'application/json' };
export const TALLYFY: Headers = {
  authorization: `Bearer ${SANDBOX_KEYS.tallyfy}`,
  'x-tallyfy-client': 'APIClient',
  accept: 'application/json',
  'content-type': 'application/json',
};
export const NECTED: Headers = { 'nected-api-key': SANDBOX_KEYS.nected, 'content-type': 'application/json' };

/** An id that only survives if the sandbox splits the path before decoding it. */
export const ODD_ID = 'a/b?c#d%e f\u00e9';
export const enc = encodeURIComponent;

export const definition = (version: number): Record<string, unknown> & { name: string; version: number } => ({
  name: 'order',
  version,
  tasks: [{ name: 't', taskReferenceName: 't_ref', type: 'SIMPLE' }],
  schemaVersion: 2,
  timeoutSeconds: 0,
  ownerEmail: 'ops@example.com',
});

export const FIXTURES: SandboxFixtures = {
  alloy: {
    workflows: { 'wf-1': { latestVersion: 5 }, [ODD_ID]: { latestVersion: 3 } },
    installs: [
      { workflowId: 'wf-1', userId: 'u-1', version: 4 },
      { workflowId: 'wf-1', userId: 'u-reinstall', version: 4, reinstallRequired: true },
      { workflowId: 'wf-1', userId: 'u-forbidden', version: 4, forbidden: true },
      { workflowId: ODD_ID, userId: 'user \u00e9', version: 1 },
    ],
  },
  conductor: {
    executions: [
      { workflowId: 'exec-1', workflowName: 'order', workflowVersion: 1, status: 'RUNNING', input: { a: 1, b: 2 } },
      { workflowId: 'exec-done', workflowName: 'order', workflowVersion: 1, status: 'COMPLETED' },
      { workflowId: ODD_ID, workflowName: 'order', workflowVersion: 1, status: 'PAUSED' },
    ],
    definitions: [definition(1), definition(2)],
  },
  tallyfy: {
    runs: [
      { orgId: 'org-1', id: 'run-1', name: 'Onboarding', tags: ['t1'] },
      { orgId: 'org-1', id: 'run-forbidden', name: 'Secret', forbidden: true },
      { orgId: ODD_ID, id: ODD_ID, name: 'Odd' },
    ],
  },
  nected: {
    workflows: [
      { entityId: 'ent-1', graph: { name: 'main wf', description: 'd', startNode: '1', nodes: [], edges: [] } },
      { entityId: 'ent-1', branch: 'dev', graph: { name: 'dev wf', nodes: [{ id: '1' }], edges: [] } },
      { entityId: ODD_ID, graph: { name: 'odd wf', nodes: [], edges: [] } },
    ],
  },
};

/** The sandbox's own defaults: each test starts from them, whatever the one before configured. */
export const DEFAULT_CONFIG = defaultConfig();

/** `call` against a file's sandbox (a `setupSandbox` handle, read at call time). */
export const apiOn =
  (sb: Sandbox) =>
  (method: Dispatcher.HttpMethod, path: string, opts?: { headers?: Headers; body?: unknown }): Promise<Answer> =>
    call(sb.url, method, path, opts);
