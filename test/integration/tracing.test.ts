import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { beforeEach, describe, expect, it } from 'vitest';
import { initTracing, tracingActive, upshiftTracer, withSpan } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet, CREDENTIAL_ENV } from '../support/fleet.js';
import { redisUrl, waitForCompletion } from '../support/harness.js';
import { testConnectionsFile } from '../support/connections.js';

const cliPath = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

type AttrValue = string | number | boolean | undefined;

interface ReceivedSpan {
  readonly service: AttrValue;
  readonly scope: string;
  readonly name: string;
  readonly attributes: Readonly<Record<string, AttrValue>>;
  readonly statusCode: number;
  readonly events: readonly { name: string; attributes: Readonly<Record<string, AttrValue>> }[];
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
}

function attrs(list: OtlpAttribute[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const { key, value } of list ?? []) {
    // OTLP/JSON writes 64-bit integers as strings or numbers; both are read as numbers.
    out[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue));
  }
  return out;
}

/**
 * A stand-in OTLP/HTTP collector: exporter-trace-otlp-http 0.215 POSTs JSON
 * (`content-type: application/json`) to `<endpoint>/v1/traces`. It answers only once the body
 * is parsed, so every span is recorded by the time the exporting process has its answer.
 */
async function startCollector(): Promise<{ url: string; spans: ReceivedSpan[]; contentTypes: Set<string>; server: Server }> {
  const spans: ReceivedSpan[] = [];
  const contentTypes = new Set<string>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      contentTypes.add(String(req.headers['content-type']));
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const doc = JSON.parse(body.toString('utf8')) as {
        resourceSpans: {
          resource?: { attributes?: OtlpAttribute[] };
          scopeSpans: { scope?: { name: string }; spans: { name: string; attributes?: OtlpAttribute[]; status?: { code?: number }; events?: { name: string; attributes?: OtlpAttribute[] }[] }[] }[];
        }[];
      };
      for (const rs of doc.resourceSpans) {
        const service = attrs(rs.resource?.attributes)['service.name'];
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              service,
              scope: ss.scope?.name ?? '',
              name: s.name,
              attributes: attrs(s.attributes),
              statusCode: s.status?.code ?? 0,
              events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attrs(e.attributes) })),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, contentTypes, server };
}

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, ...CREDENTIAL_ENV, LOG_LEVEL: 'warn', ...env } });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(proc, 'close')) as [number | null];
  return { code, stdout, stderr };
}

describe('tracing', () => {
  const t = setupDeployment({ sandbox: { seed: 5 } });
  let dir: string;

  beforeEach(() => {
    dir = t.tempDir('upshift-tracing-');
  });

  it('with OTEL_EXPORTER_OTLP_ENDPOINT: a span for the enqueue and one per target, with campaign, operation, outcome, reason, attempt', async () => {
    const collector = await startCollector();
    t.defer(async () => {
      collector.server.closeAllConnections();
      collector.server.close();
    });
    const fleet = alloyFleet(4);
    t.sandbox.load(fleet.fixtures);
    const spec = {
      id: 'traced',
      connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY' },
      operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
    };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
    writeFileSync(join(dir, 'targets.ndjson'), [...fleet.targets, { userId: 'ghost' }].map((t) => JSON.stringify(t)).join('\n') + '\n');
    const env = { REDIS_URL: redisUrl(), UPSHIFT_PREFIX: t.prefix, UPSHIFT_CONNECTIONS: testConnectionsFile(t.sandbox.url), OTEL_EXPORTER_OTLP_ENDPOINT: collector.url };

    const enqueued = await cli(['enqueue', join(dir, 'spec.json'), '--targets', join(dir, 'targets.ndjson'), '--json'], env);
    expect(enqueued.stderr).toBe('');
    expect(enqueued.code).toBe(0);
    // The CLI flushed before exiting: the span is here already.
    const enqueueSpans = collector.spans.filter((s) => s.name === 'upshift.enqueue');
    expect(enqueueSpans).toHaveLength(1);
    expect(enqueueSpans[0]).toMatchObject({
      service: 'upshift-producer',
      scope: 'upshift',
      statusCode: 0,
      attributes: { 'upshift.campaign.id': 'traced', 'upshift.operation.type': 'alloy.upgradeWorkflow', 'upshift.targets.total': 5, 'upshift.created': true },
    });
    expect([...collector.contentTypes]).toEqual(['application/json']);

    const worker = await t.spawnWorker([], { ...env, LOG_LEVEL: 'warn' });
    const status = await waitForCompletion(t.prefix, 'traced');
    expect(status).toMatchObject({ upgraded: 4, failed: 1 });
    worker.proc.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });

    const targetSpans = collector.spans.filter((s) => s.name === 'upshift.target' && s.attributes['upshift.claim'] === 'claimed');
    expect(targetSpans).toHaveLength(5);
    for (const s of targetSpans) {
      expect(s).toMatchObject({
        service: 'upshift-worker',
        scope: 'upshift',
        attributes: { 'upshift.campaign.id': 'traced', 'upshift.operation.type': 'alloy.upgradeWorkflow', 'upshift.attempt': 1, 'upshift.decision': 'finish', 'upshift.recorded': true },
      });
      expect(s.events.filter((e) => e.name === 'platform.call')).toHaveLength(1);
    }
    const byOutcome = (outcome: string) => targetSpans.filter((s) => s.attributes['upshift.outcome'] === outcome);
    expect(byOutcome('upgraded').map((s) => [s.attributes['upshift.reason'], s.statusCode, s.events[0]!.attributes['http.response.status_code']])).toEqual(
      Array(4).fill(['UPGRADED', 0, 200]),
    );
    expect(byOutcome('failed').map((s) => [s.attributes['upshift.reason'], s.statusCode, s.events[0]!.attributes['http.response.status_code']])).toEqual([
      ['NOT_FOUND', 2, 404],
    ]);
    // One span per target: every holder once.
    expect(new Set(targetSpans.map((s) => s.attributes['upshift.holder'])).size).toBe(5);
  });

  it('without an endpoint nothing is registered: no tracer, spans skipped', async () => {
    const env = { ...process.env };
    delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
    delete env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    expect(await initTracing('upshift-worker', env)).toBe(false);
    expect(tracingActive()).toBe(false);
    expect(upshiftTracer()).toBeUndefined();
    let seen: unknown = 'not called';
    expect(await withSpan('upshift.enqueue', {}, async (span) => ((seen = span), 42))).toBe(42);
    expect(seen).toBeUndefined();
  });
});
