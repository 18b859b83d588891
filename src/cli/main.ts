#!/usr/bin/env node
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import {
  cancelCampaign,
  enqueueSourced,
  listCampaigns,
  pauseCampaign,
  promoteCampaign,
  readNdjsonTargets,
  resumeCampaign,
  retryCampaign,
} from '../producer/index.js';
import {
  connectRedis,
  createLogger,
  createRedis,
  csvHeader,
  csvLine,
  initTracing,
  InputError,
  loadConfig,
  parseSpec,
  loadConnections,
  readStatus,
  REPORT_OUTCOMES,
  RedisUnavailableError,
  shutdownTracing,
  streamReport,
  type CampaignStatus,
  type Redis,
  type ServiceName,
  type UpshiftConfig,
} from '../shared/index.js';
import { startWorker } from '../worker/index.js';
import { numberFlag, parseFlags } from './flags.js';
import { runSandboxCommand } from './sandbox.js';
import { runServeCommand } from './serve.js';
import { printableStatus, watchCampaign, WATCH_DEFAULTS } from './watch.js';
import { escapeControlChars, jsonForTerminal } from '../shared/text.js';

/** Exit codes: 0 ok, 2 invalid input, 1 anything else. */
const EXIT_INPUT = 2;

const USAGE = `upshift <command> [options]

Commands:
  enqueue <spec.json> [--targets <file.ndjson|->] [--dry-run] [--json]   create a campaign
  worker [--concurrency N] [--lease-ms N] [--metrics-port N]  process targets until SIGTERM/SIGINT
  status <id> [--json] [--watch [--interval-ms N]]            print a campaign's status; --watch: live progress
  report <id> [--outcome X] [--format ndjson|csv]             one record per target
  list [--json]                                               campaigns with state, counts, age
  pause <id> | resume <id> | cancel <id> | promote <id>       control a campaign
  retry <id> [--reason CODE]                                  run failed targets again
  sandbox [--host H] [--port N] [--latency-ms N] [--fail-rate R] [--throttle-rate R] [--conflict-rate R]
          [--reset-rate R] [--slow-rate R] [--slow-ms N] [--limit-key-pattern RE] [--seed N]
  serve [--port N] [--host H] [--insecure-no-auth]            HTTP API, dashboard, /docs, Bull Board

Environment: REDIS_URL (default redis://127.0.0.1:6379), UPSHIFT_PREFIX (default upshift), LOG_LEVEL,
UPSHIFT_RETENTION_MS (how long an ended campaign's data is kept; default 7 days).
Run "upshift <command> --help" for examples.`;

const HELP: Record<string, string> = {
  serve: `upshift serve [--port N] [--host H] [--insecure-no-auth] [--body-limit-bytes N] [--stream-limit-bytes N]
              [--request-timeout-ms N] [--connection-timeout-ms N]

Serves the HTTP producer API (docs/API.md), the campaign dashboard at /, the OpenAPI document
at /openapi.json (rendered at /docs), Bull Board at /admin/queues, /metrics, /healthz and
/readyz, on --host (default 127.0.0.1) and --port (default 3000), until SIGTERM/SIGINT. Every
route but /healthz, /readyz and the dashboard's page needs "Authorization: Bearer
$UPSHIFT_API_TOKEN" (the dashboard asks for the token once and keeps it in a cookie). Without
UPSHIFT_API_TOKEN it refuses to start (exit 2) unless --insecure-no-auth is given.
--body-limit-bytes caps a JSON body (default 16 MiB), --stream-limit-bytes a streamed NDJSON
body (default 1 GiB); larger bodies, and NDJSON lines over 1 MiB, are refused with 413.
--request-timeout-ms bounds the time to receive a whole request (default 300000),
--connection-timeout-ms closes a connection idle that long (default 60000); 0 turns either off.
The environment can set all four: UPSHIFT_API_BODY_LIMIT_BYTES, UPSHIFT_API_STREAM_LIMIT_BYTES,
UPSHIFT_API_REQUEST_TIMEOUT_MS, UPSHIFT_API_CONNECTION_TIMEOUT_MS (a flag wins). Prints
"upshift api listening on <url>" on stdout once it listens.

Examples:
  UPSHIFT_API_TOKEN=$(openssl rand -hex 32) upshift serve --port 3000
  upshift serve --host 0.0.0.0 --port 8080
  curl -H "Authorization: Bearer $UPSHIFT_API_TOKEN" -H 'content-type: application/json' \\
    --data-binary @campaign.json localhost:3000/campaigns`,
  list: `upshift list [--json]

Every campaign still in Redis, newest first: state, counts, age. --json prints one array.

Examples:
  upshift list
  UPSHIFT_PREFIX=staging upshift list --json`,
  pause: `upshift pause <id>

No new target of the campaign starts once this returns (dispatched ones wait); targets in flight
finish. Resume with "upshift resume <id>".

Examples:
  upshift pause onboarding-v3
  upshift pause onboarding-v3 && upshift status onboarding-v3 --watch`,
  resume: `upshift resume <id>

Continues a paused campaign where it stopped, including one paused by its failure budget
(pausedReason FAILURE_BUDGET_EXCEEDED), whose budget is then judged afresh.

Examples:
  upshift resume onboarding-v3
  upshift resume onboarding-v3 && upshift status onboarding-v3 --watch`,
  cancel: `upshift cancel <id>

Stops the campaign: every target that has not started is recorded skipped/CANCELLED; targets in
flight finish. Running it again finishes an interrupted cancel.

Examples:
  upshift cancel onboarding-v3
  upshift report onboarding-v3 --outcome skipped     # what the cancel left out`,
  promote: `upshift promote <id>

Starts the next step of a staged rollout waiting at a manual gate (state "gated").

Examples:
  upshift status onboarding-v3       # check the step's failures first
  upshift promote onboarding-v3`,
  retry: `upshift retry <id> [--reason CODE]

Runs the campaign's failed targets again (only those failed with CODE, when given). Their earlier
outcome is replaced; counters stay exact. Reason codes: docs/REASONS.md.

Examples:
  upshift retry onboarding-v3
  upshift retry onboarding-v3 --reason SERVER_ERROR`,
  enqueue: `upshift enqueue <spec.json> [--targets <file.ndjson|->] [--dry-run] [--json]

Validates the spec and every target, then creates the campaign. Nothing is enqueued when any
line is invalid (exit 2, naming the line and field). Re-running with the same campaign id
creates no duplicate work. --dry-run (or "dryRun": true) makes only the read calls and records
would-upgrade / would-skip / would-fail per target, changing nothing on the platform.

Examples:
  upshift enqueue campaign.json --targets users.ndjson
  upshift enqueue campaign.json --targets users.ndjson --dry-run
  cat users.ndjson | upshift enqueue campaign.json --targets - --json`,
  worker: `upshift worker [--concurrency N] [--lease-ms N] [--lock-duration-ms N] [--stalled-interval-ms N] [--shutdown-timeout-ms N]
               [--metrics-port N [--metrics-host H]]

Processes targets until SIGTERM/SIGINT, then takes no new job, lets in-flight ones finish
(at most --shutdown-timeout-ms) and exits 0. --lease-ms (default 30000) is how long a slot
stays taken after its worker died; every worker of a deployment should use the same value.
--metrics-port serves GET /metrics (Prometheus) and GET /healthz (200 while the worker runs) on
that port, on --metrics-host (default 127.0.0.1, loopback only; 0.0.0.0 lets a scraper on another
host or container reach it; docs/OBSERVABILITY.md). OTEL_EXPORTER_OTLP_ENDPOINT=<collector URL>
turns on OpenTelemetry spans, one per target (service upshift-worker).

Examples:
  ALLOY_API_KEY=... upshift worker --concurrency 50
  upshift worker --metrics-port 9464
  upshift worker --metrics-port 9464 --metrics-host 0.0.0.0
  REDIS_URL=rediss://:pw@redis.internal:6380 upshift worker --shutdown-timeout-ms 60000`,
  status: `upshift status <id> [--json] [--watch [--interval-ms N]]

Prints the campaign's status hash: state, counts by outcome, pending, active, retries.
--watch follows it live until it completes or is cancelled (Ctrl-C stops watching; the campaign
goes on): on a terminal a progress bar redrawn in place with rate, ETA and reasons; otherwise
one plain key=value line per change, at most one per --interval-ms (default ${WATCH_DEFAULTS.intervalMs}) besides
state changes. With --json, one status JSON per line instead. Exits 0 when the campaign ended.

Examples:
  upshift status onboarding-v3
  upshift status onboarding-v3 --json
  upshift status onboarding-v3 --watch
  upshift status onboarding-v3 --watch --interval-ms 5000 | tee progress.log`,
  report: `upshift report <id> [--outcome upgraded|skipped|failed|pending] [--format ndjson|csv]

Streams one record per target (target, outcome, reason, attempts, error, at), pending ones too.

Examples:
  upshift report onboarding-v3 --outcome failed --format csv > failed.csv
  upshift report onboarding-v3 | grep RETRIES_EXHAUSTED`,
  sandbox: `upshift sandbox [--host H] [--port N] [--latency-ms N] [--fail-rate R] [--throttle-rate R] [--conflict-rate R]
                [--reset-rate R] [--slow-rate R] [--slow-ms N] [--limit-key-pattern RE] [--retry-after-s N] [--seed N]

Serves the four platforms' APIs from memory, for tests and demos. Load fixtures with
POST /__sandbox/fixtures; read counters from GET /__sandbox/stats. Faults are seeded shares of
requests: 5xx, 429 (with Retry-After), connection resets (before any change), answers slower
than --slow-ms (after the change). --limit-key-pattern's first capture group over a request's
target key names the value whose concurrency the stats record.

Examples:
  upshift sandbox --port 4010 --fail-rate 0.1 --throttle-rate 0.05
  curl -X POST localhost:4010/__sandbox/fixtures -H 'content-type: application/json' \\
    -d '{"alloy":{"workflows":{"wf_1":{"latestVersion":2}},"installs":[{"workflowId":"wf_1","userId":"u_1","version":1}]}}'`,
};

async function withRedis<T>(config: UpshiftConfig, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = createRedis(config.redisUrl);
  redis.on('error', () => undefined);
  try {
    await connectRedis(redis, config.redisUrl);
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

async function enqueueCommand(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, {
    targets: { type: 'string' },
    json: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
  });
  if (values.help) return void console.log(HELP.enqueue);
  const specPath = positionals[0];
  if (!specPath) throw new InputError('arguments', 'missing <spec.json>');
  let text: string;
  try {
    text = await readFile(specPath, 'utf8');
  } catch (err) {
    throw new InputError(specPath, `cannot read: ${(err as Error).message}; check the path`);
  }
  const connections = loadConnections();
  const parsed = parseSpec(text, specPath, connections);
  const spec = values['dry-run'] ? { ...parsed, dryRun: true } : parsed;
  const targetsArg = values.targets as string | undefined;
  const source = targetsArg === undefined ? undefined : targetsArg === '-' ? 'stdin' : targetsArg;
  let sourced: ReturnType<typeof readNdjsonTargets> | undefined;
  if (targetsArg !== undefined) {
    const stream = targetsArg === '-' ? process.stdin : createReadStream(targetsArg);
    sourced = readNdjsonTargets(stream, source!);
    stream.on('error', () => undefined);
  }
  const result = await withRedis(config, (redis) =>
    enqueueSourced(spec, sourced, { redis, prefix: config.prefix, retentionMs: config.retentionMs, connections, ...(source ? { source } : {}) }),
  );
  if (values.json) console.log(JSON.stringify({ campaignId: result.campaignId, total: result.total }));
  else {
    console.log(
      result.created
        ? `enqueued campaign ${result.campaignId}: ${result.total} targets`
        : `campaign ${result.campaignId} exists already (${result.total} targets); nothing new enqueued`,
    );
  }
}

async function workerCommand(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values } = parseFlags(argv, {
    concurrency: { type: 'string' },
    'lease-ms': { type: 'string' },
    'lock-duration-ms': { type: 'string' },
    'stalled-interval-ms': { type: 'string' },
    'shutdown-timeout-ms': { type: 'string' },
    'metrics-port': { type: 'string' },
    'metrics-host': { type: 'string' },
  });
  if (values.help) return void console.log(HELP.worker);
  const metricsPort = numberFlag(values['metrics-port'], 'metrics-port', { min: 0, max: 65535 });
  const metricsHost = values['metrics-host'];
  if (metricsHost !== undefined) {
    if (typeof metricsHost !== 'string' || metricsHost.trim() === '') {
      throw new InputError('arguments', 'must be an address or host name', { field: '--metrics-host' });
    }
    if (metricsPort === undefined) throw new InputError('arguments', 'needs --metrics-port', { field: '--metrics-host' });
  }
  // Flags first: a mistyped flag is named as such even where no registry is set up yet.
  const flags = {
    concurrency: numberFlag(values.concurrency, 'concurrency', { min: 1 }),
    leaseMs: numberFlag(values['lease-ms'], 'lease-ms', { min: 300 }),
    lockDurationMs: numberFlag(values['lock-duration-ms'], 'lock-duration-ms', { min: 1000 }),
    stalledIntervalMs: numberFlag(values['stalled-interval-ms'], 'stalled-interval-ms', { min: 100 }),
    shutdownTimeoutMs: numberFlag(values['shutdown-timeout-ms'], 'shutdown-timeout-ms', { min: 0 }),
    metricsPort,
    metricsHost,
  };
  const connections = loadConnections();
  const log = createLogger(config.logLevel, 'upshift-worker');
  const running = await startWorker(config, log, { connections, ...flags } as Parameters<typeof startWorker>[2]);
  log.info({ concurrency: running.worker.opts.concurrency }, 'worker started');
  // Announce readiness on stdout for supervisors and tests that wait for it.
  console.log('upshift worker ready');
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down: no new jobs, waiting for in-flight ones');
      running.close().then(resolve, (err) => {
        log.error({ err: (err as Error).message }, 'shutdown error');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.info('worker stopped');
}

function formatStatus(status: CampaignStatus): string {
  const s = printableStatus(status);
  const done = s.upgraded + s.skipped + s.failed + s.wouldUpgrade + s.wouldSkip + s.wouldFail;
  const pct = s.total === 0 ? 100 : Math.floor((done / s.total) * 100);
  return [
    `campaign ${s.id}${s.name ? ` (${s.name})` : ''}: ${s.state}, ${s.operation}`,
    s.dryRun
      ? `  dry run, ${done}/${s.total} done (${pct}%): would upgrade ${s.wouldUpgrade}, would skip ${s.wouldSkip}, would fail ${s.wouldFail}`
      : `  ${done}/${s.total} done (${pct}%): upgraded ${s.upgraded}, skipped ${s.skipped}, failed ${s.failed}`,
    `  pending ${s.pending}, active ${s.active}; retries ${s.retries}, Retry-After waits ${s.retryAfterWaits}, conflicts ${s.conflicts}, reclaimed ${s.reclaimed}`,
    ...(s.pausedReason ? [`  paused: ${s.pausedReason}`] : []),
  ].join('\n');
}

async function statusCommand(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, { json: { type: 'boolean' }, watch: { type: 'boolean' }, 'interval-ms': { type: 'string' } });
  if (values.help) return void console.log(HELP.status);
  const id = positionals[0];
  if (!id) throw new InputError('arguments', 'missing <id>; usage: upshift status <id>');
  const intervalMs = numberFlag(values['interval-ms'], 'interval-ms', { min: WATCH_DEFAULTS.minIntervalMs });
  if (intervalMs !== undefined && !values.watch) throw new InputError('arguments', 'only applies to --watch; add --watch', { field: '--interval-ms' });
  if (values.watch) {
    await withRedis(config, async (redis) => {
      // Ctrl-C ends the watch, not the process: the cursor comes back and the exit code is 0.
      const stop = new AbortController();
      const abort = () => stop.abort();
      process.once('SIGINT', abort).once('SIGTERM', abort);
      try {
        await watchCampaign({
          redis, prefix: config.prefix, id, out: process.stdout, signal: stop.signal, json: values.json === true,
          color: !process.env.NO_COLOR, ...(intervalMs === undefined ? {} : { intervalMs }),
        });
      } finally {
        process.off('SIGINT', abort).off('SIGTERM', abort);
      }
    });
    return;
  }
  const status = await withRedis(config, (redis) => readStatus(redis, config.prefix, id));
  if (!status) throw new InputError('arguments', `no campaign "${id}" under prefix "${config.prefix}"; list campaigns with "upshift list" or set UPSHIFT_PREFIX`);
  console.log(values.json ? jsonForTerminal(status) : formatStatus(status));
}

const OUTCOME_FILTERS: readonly string[] = REPORT_OUTCOMES;

async function reportCommand(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, { outcome: { type: 'string' }, format: { type: 'string' } });
  if (values.help) return void console.log(HELP.report);
  const id = positionals[0];
  if (!id) throw new InputError('arguments', 'missing <id>');
  const outcome = values.outcome as string | undefined;
  if (outcome !== undefined && !OUTCOME_FILTERS.includes(outcome)) {
    throw new InputError('arguments', `must be one of ${OUTCOME_FILTERS.join(', ')}`, { field: '--outcome' });
  }
  const format = (values.format as string | undefined) ?? 'ndjson';
  if (format !== 'ndjson' && format !== 'csv') throw new InputError('arguments', 'must be ndjson or csv', { field: '--format' });
  await withRedis(config, async (redis) => {
    if (!(await readStatus(redis, config.prefix, id))) {
      throw new InputError('arguments', `no campaign "${id}" under prefix "${config.prefix}"; list campaigns with "upshift list" or set UPSHIFT_PREFIX`);
    }
    const out = process.stdout;
    if (format === 'csv') await write(out, csvHeader() + '\n');
    let buf = '';
    for await (const line of streamReport(redis, config.prefix, id, outcome === undefined ? {} : { outcome })) {
      buf += (format === 'csv' ? csvLine(line) : jsonForTerminal(line)) + '\n';
      if (buf.length > 64 * 1024) {
        await write(out, buf);
        buf = '';
      }
    }
    if (buf) await write(out, buf);
  });
}

function controlCommand(name: 'pause' | 'resume' | 'cancel' | 'promote') {
  return async (argv: string[], config: UpshiftConfig): Promise<void> => {
    const { values, positionals } = parseFlags(argv, {});
    if (values.help) return void console.log(HELP[name]);
    const id = positionals[0];
    if (!id) throw new InputError('arguments', 'missing <id>');
    await withRedis(config, async (redis) => {
      const opts = { redis, prefix: config.prefix };
      if (name === 'cancel') {
        const drained = await cancelCampaign(id, opts);
        console.log(`campaign ${escapeControlChars(id)} cancelled: ${drained} targets that had not started recorded skipped/CANCELLED`);
        return;
      }
      const run = { pause: pauseCampaign, resume: resumeCampaign, promote: promoteCampaign }[name];
      console.log(escapeControlChars(`campaign ${id}: ${await run(id, opts)}`));
    });
  };
}

async function retryCommand(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, { reason: { type: 'string' } });
  if (values.help) return void console.log(HELP.retry);
  const id = positionals[0];
  if (!id) throw new InputError('arguments', 'missing <id>');
  const reason = values.reason as string | undefined;
  const n = await withRedis(config, (redis) =>
    retryCampaign(id, { redis, prefix: config.prefix, ...(reason === undefined ? {} : { reason }) }),
  );
  console.log(`campaign ${escapeControlChars(id)}: ${n} failed targets put back to run`);
}

function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

async function listCommand(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' } });
  if (values.help) return void console.log(HELP.list);
  const list = await withRedis(config, (redis) => listCampaigns({ redis, prefix: config.prefix }));
  if (values.json) return void console.log(jsonForTerminal(list));
  const rows = [['ID', 'STATE', 'TOTAL', 'UPGRADED', 'SKIPPED', 'FAILED', 'PENDING', 'ACTIVE', 'AGE']];
  for (const c of list) {
    rows.push([c.id, c.state, c.total, c.upgraded, c.skipped, c.failed, c.pending, c.active, formatAge(c.ageMs)].map((v) => escapeControlChars(String(v))));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

function write(out: NodeJS.WritableStream, s: string): Promise<void> {
  return new Promise((resolve) => (out.write(s) ? resolve() : out.once('drain', resolve)));
}

const COMMANDS: Record<string, (argv: string[], config: UpshiftConfig) => Promise<void>> = {
  enqueue: enqueueCommand,
  worker: workerCommand,
  status: statusCommand,
  report: reportCommand,
  list: listCommand,
  pause: controlCommand('pause'),
  resume: controlCommand('resume'),
  cancel: controlCommand('cancel'),
  promote: controlCommand('promote'),
  retry: retryCommand,
  sandbox: (argv) => runSandboxCommand(argv, HELP.sandbox!),
  serve: (argv, config) => runServeCommand(argv, config, HELP.serve!),
};

/** The fix for an input error whose message names only what is wrong; '' when it says both. */
function inputHint(err: InputError, command: string): string {
  if (err.message.includes('; ')) return '';
  if (err.source === 'arguments') return `; see "upshift ${command} --help"`;
  if (err.source === 'environment') return '; correct the variable, or unset it for the default';
  if (err.source === 'campaign' && err.field === 'id') return '; list campaigns with "upshift list" (and check UPSHIFT_PREFIX)';
  return '';
}

/** Commands that emit spans when OTEL_EXPORTER_OTLP_ENDPOINT is set, with their service name. */
const TRACED: Record<string, ServiceName> = { enqueue: 'upshift-producer', worker: 'upshift-worker', serve: 'upshift-api' };

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? EXIT_INPUT : 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`upshift: unknown command "${escapeControlChars(command)}"; run "upshift --help" for the list of commands`);
    return EXIT_INPUT;
  }
  try {
    const service = TRACED[command];
    if (service) await initTracing(service);
    await run(rest, loadConfig());
    return 0;
  } catch (err) {
    // Messages quote input and stored text (an id, a bad JSON line, a platform's answer): shown
    // escaped, so none of it can drive the terminal.
    const say = (text: string) => console.error(escapeControlChars(text));
    if (err instanceof InputError) {
      say(`upshift ${command}: ${err.message}${inputHint(err, command)}`);
      return EXIT_INPUT;
    }
    if (err instanceof RedisUnavailableError) {
      say(`upshift ${command}: ${err.message}`);
      return 1;
    }
    // One line for the operator; the stack is for whoever debugs it, on request.
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
    say(`upshift ${command}: ${message} (unexpected error; run with LOG_LEVEL=debug for details)`);
    if (/^(debug|trace)$/.test(process.env.LOG_LEVEL ?? '')) {
      for (const line of ((err as Error)?.stack ?? String(err)).split('\n')) say(line);
    }
    return 1;
  } finally {
    // Batched spans go out before the process exits (a no-op when tracing is off).
    await shutdownTracing();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
