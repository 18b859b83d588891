import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OpenAPIBackend } from 'openapi-backend';
import { describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { type Sandbox } from '../../src/sandbox/index.js';
import { alloyFleet, nectedGraph } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';
import { setupDeployment } from '../support/deployment.js';

/**
 * The requests Upshift really sends (as the sandbox received them, bytes and all) validated
 * against the platforms' own OpenAPI documents with a real validator. The documents are kept
 * beside this file (reference/README.md says where they come from).
 */
const reference = (f: string) => fileURLToPath(new URL(`./reference/${f}`, import.meta.url));

/**
 * The Nected document says `nullable: true` on schemas without a `type` (which allow any value,
 * null included); Ajv refuses that combination outright, so those no-op flags are dropped.
 */
function dropUntypedNullable(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(dropUntypedNullable);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'nullable' && !('type' in node)) continue;
    out[k] = dropUntypedNullable(v);
  }
  return out;
}

async function validator(file: string) {
  const definition = file.endsWith('.json')
    ? (dropUntypedNullable(JSON.parse(readFileSync(reference(file), 'utf8'))) as never)
    : reference(file);
  const api = new OpenAPIBackend({ definition, strict: true, validate: true });
  await api.init();
  return api;
}

type Received = NonNullable<Sandbox['received']>[number];

function asRequest(r: Received) {
  const url = new URL(r.path, 'http://sandbox');
  return {
    method: r.method.toLowerCase(),
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')])),
    body: r.body === '' ? undefined : JSON.parse(r.body),
  };
}

describe('requests match the platforms OpenAPI documents', () => {
  const t = setupDeployment({ scope: 'all', sandbox: { record: true, conflictRate: 0.3, seed: 3 }, worker: { concurrency: 4 }, credentials: true });

  it('alloy: PUT /workflows/{workflowId}/upgrade', async () => {
    const fleet = alloyFleet(5, 'wf ü/1');
    t.sandbox.load(fleet.fixtures);
    const { campaignId } = await enqueueCampaign(
      { connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' }, operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf ü/1' } },
      [...fleet.targets, { userId: 'a?b&c=#d' }],
      t.producer,
    );
    await waitForCompletion(t.prefix, campaignId);
    const api = await validator('alloy-embedded.openapi.yaml');
    const reqs = t.sandbox.received!.filter((r) => r.path.startsWith('/workflows/'));
    expect(reqs).toHaveLength(6);
    for (const r of reqs) {
      const req = asRequest(r);
      const result = api.validateRequest(req);
      expect(result.errors ?? [], JSON.stringify(req)).toEqual([]);
      expect(api.router.matchOperation(req)?.operationId).toBe('upgrade-workflow');
      expect(decodeURIComponent(req.path.split('/')[2]!)).toBe('wf ü/1');
    }
    expect(reqs.map((r) => new URL(r.path, 'http://x').searchParams.get('userId'))).toContain('a?b&c=#d');
    // the validator can fail: the same request without its version header does not pass
    const { 'x-api-version': _dropped, ...headers } = asRequest(reqs[0]!).headers;
    expect(api.validateRequest({ ...asRequest(reqs[0]!), headers }).valid).toBe(false);
  });

  it('nected: PATCH /dev/v1/workflow/{entity-id}, after a conflict too', async () => {
    t.sandbox.load({ nected: { workflows: Array.from({ length: 8 }, (_, i) => ({ entityId: `n-${i}`, graph: nectedGraph(`g${i}`) })) } });
    const { campaignId } = await enqueueCampaign(
      {
        connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_NECTED_KEY' },
        operation: { type: 'nected.updateWorkflow', conflictRetries: 20, patch: [{ op: 'add', path: '/nodes/-', value: { id: '2', type: 'codeNode', data: { nodeType: 'codeNode', name: 'New' } } }] },
      },
      Array.from({ length: 8 }, (_, i) => ({ entityId: `n-${i}` })),
      t.producer,
    );
    const status = await waitForCompletion(t.prefix, campaignId);
    expect(status.upgraded).toBe(8);
    const api = await validator('nected-workflow.openapi.json');
    const patches = t.sandbox.received!.filter((r) => r.method === 'PATCH');
    expect(patches.length).toBeGreaterThanOrEqual(8);
    for (const r of patches) {
      const req = asRequest(r);
      expect(api.validateRequest(req).errors ?? []).toEqual([]);
      expect(api.router.matchOperation(req)?.operationId).toBe('updateWorkflow');
      expect(req.headers['nected-api-key']).toBe(process.env.UPSHIFT_TEST_NECTED_KEY);
      expect(typeof (req.body as { checksum: unknown }).checksum).toBe('string');
    }
    const bad = { ...asRequest(patches[0]!), body: { checksum: 1, nodes: 'x' } };
    expect(api.validateRequest(bad).valid).toBe(false);
  });
});
