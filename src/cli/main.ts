#!/usr/bin/env node
import {
  ERRORS,
  errorCodeOf,
  EXIT,
  initTracing,
  loadConfig,
  shutdownTracing,
  type ErrorCode,
  type ServiceName,
  type UpshiftConfig,
} from '../shared/index.js';
import { escapeControlChars } from '../shared/text.js';

/** One `upshift <name>` command (src/cli/commands/<name>.ts): its --help text and its handler. */
interface Command {
  readonly help: string;
  run(argv: string[], config: UpshiftConfig): Promise<void>;
}

/**
 * Each command's module, loaded when it runs: a worker no longer reads and compiles the API
 * server, the dashboard and the sandbox it never starts. That is start-up work only: an idle
 * worker's RSS measured the same before and after (97-99 MB against 96-101 MB).
 */
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  enqueue: () => import('./commands/enqueue.js'),
  worker: () => import('./commands/worker.js'),
  status: () => import('./commands/status.js'),
  report: () => import('./commands/report.js'),
  list: () => import('./commands/list.js'),
  pause: () => import('./commands/pause.js'),
  resume: () => import('./commands/resume.js'),
  cancel: () => import('./commands/cancel.js'),
  promote: () => import('./commands/promote.js'),
  retry: () => import('./commands/retry.js'),
  undo: () => import('./commands/undo.js'),
  notifications: () => import('./commands/notifications.js'),
  sandbox: () => import('./commands/sandbox.js'),
  serve: () => import('./commands/serve.js'),
};

const USAGE = `upshift <command> [options]

Commands:
  enqueue <spec.json> [--targets <file.ndjson|->] [--dry-run] [--json]   create a campaign
  worker [--concurrency N] [--lease-ms N] [--metrics-port N]  process targets until SIGTERM/SIGINT
  status <id> [--json] [--watch [--interval-ms N]]            print a campaign's status; --watch: live progress
  report <id> [--outcome X] [--format ndjson|csv]             one record per target
  list [--json]                                               campaigns with state, counts, age
  pause <id> | resume <id> | cancel <id> | promote <id>       control a campaign
  retry <id> [--reason CODE]                                  run failed targets again
  undo <id> [--dry-run] [--json] [--wait-ms N]                put the targets a campaign upgraded back as they were
  notifications <id> [--json]                                 a campaign's signed webhook deliveries
  sandbox [--host H] [--port N] [--latency-ms N] [--fail-rate R] [--throttle-rate R] [--conflict-rate R]
          [--reset-rate R] [--slow-rate R] [--slow-ms N] [--limit-key-pattern RE] [--seed N]
  serve [--port N] [--host H] [--insecure-no-auth]            HTTP API, dashboard, /docs, Bull Board

Environment: REDIS_URL (default redis://127.0.0.1:6379), UPSHIFT_PREFIX (default upshift), LOG_LEVEL,
UPSHIFT_RETENTION_MS (how long an ended campaign's data is kept; default 7 days).
Run "upshift <command> --help" for examples.`;


/** Commands that emit spans when OTEL_EXPORTER_OTLP_ENDPOINT is set, with their service name. */
const TRACED: Record<string, ServiceName> = { enqueue: 'upshift-producer', undo: 'upshift-producer', worker: 'upshift-worker', serve: 'upshift-api' };

/** The CLI's hint per catalogue code: how to correct input whose message names only what is wrong. */
const HINTS: Partial<Record<ErrorCode, string>> = {
  CAMPAIGN_NOT_FOUND: 'list campaigns with "upshift list" (and check UPSHIFT_PREFIX)',
};

/** And per source: the flags' help, or the variable. */
const SOURCE_HINTS: Record<string, (command: string) => string> = {
  arguments: (command) => `see "upshift ${command} --help"`,
  environment: () => 'correct the variable, or unset it for the default',
};

/** The general fix to add to an input error whose thrower named none (`InputError.fix`). */
function inputHint(err: { source?: unknown; fix?: unknown }, code: ErrorCode, command: string): string {
  if (err.fix !== undefined) return '';
  const bySource = typeof err.source === 'string' && Object.hasOwn(SOURCE_HINTS, err.source) ? SOURCE_HINTS[err.source]!(command) : undefined;
  const hint = HINTS[code] ?? bySource;
  return hint === undefined ? '' : `; ${hint}`;
}

/** Prints the error for the operator and returns the exit code: both from its catalogue row. */
function exitFor(err: unknown, command: string): number {
  // Messages quote input and stored text (an id, a bad JSON line, a platform's answer): shown
  // escaped, so none of it can drive the terminal.
  const say = (text: string) => console.error(escapeControlChars(text));
  const { code } = errorCodeOf(err);
  const row = ERRORS[code];
  const e = err as { message?: string; source?: unknown; fix?: unknown; stack?: string } | null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (row.exitCode === EXIT.input) {
    say(`upshift ${command}: ${message}${inputHint(e ?? {}, code, command)}`);
    return row.exitCode;
  }
  if (code !== 'INTERNAL') {
    say(`upshift ${command}: ${message}`);
    return row.exitCode;
  }
  // One line for the operator; the stack is for whoever debugs it, on request.
  say(`upshift ${command}: ${message.split('\n')[0]!} (unexpected error; run with LOG_LEVEL=debug for details)`);
  if (/^(debug|trace)$/.test(process.env.LOG_LEVEL ?? '')) {
    for (const line of (e?.stack ?? String(err)).split('\n')) say(line);
  }
  return row.exitCode;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? EXIT.input : EXIT.ok;
  }
  const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!load) {
    console.error(`upshift: unknown command "${escapeControlChars(command)}"; run "upshift --help" for the list of commands`);
    return EXIT.input;
  }
  try {
    const service = TRACED[command];
    if (service) await initTracing(service);
    const found = await load();
    await found.run(rest, loadConfig());
    return EXIT.ok;
  } catch (err) {
    return exitFor(err, command);
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
    process.exitCode = EXIT.failure;
  },
);
