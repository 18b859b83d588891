import { InputError } from '../../shared/index.js';
import { configIssue, configKeys, startSandbox } from '../../sandbox/index.js';
import { numberFlag, parseFlags } from '../flags.js';

export const help = `upshift sandbox [--host H] [--port N] [--latency-ms N] [--fail-rate R] [--throttle-rate R] [--conflict-rate R]
                [--reset-rate R] [--slow-rate R] [--slow-ms N] [--drop-write-rate R] [--limit-key-pattern RE]
                [--retry-after-s N] [--capacity N] [--conflict-status 409|400] [--seed N]

Serves the four platforms' APIs from memory, for tests and demos. Load fixtures with
POST /__sandbox/fixtures; read counters from GET /__sandbox/stats. Faults are seeded shares of
requests: 5xx, 429 (with Retry-After), connection resets (before any change), answers slower
than --slow-ms (after the change), writes answered 2xx whose change is not kept
(--drop-write-rate). --limit-key-pattern's first capture group over a request's
target key names the value whose concurrency the stats record. Every run-time option of the
sandbox, a platform's own included, is a flag of the same name in kebab case.

Examples:
  upshift sandbox --port 4010 --fail-rate 0.1 --throttle-rate 0.05
  curl -X POST localhost:4010/__sandbox/fixtures -H 'content-type: application/json' \\
    -d '{"alloy":{"workflows":{"wf_1":{"latestVersion":2}},"installs":[{"workflowId":"wf_1","userId":"u_1","version":1}]}}'`;

/** `--drop-write-rate` for the option `dropWriteRate`. */
const flagOf = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * The run-time options as flags, one per option the sandbox declares (a platform's own options
 * included, so a new platform's option needs no line here), each checked by the sandbox's own
 * schema: the CLI repeats no bound.
 */
function configFromFlags(values: Record<string, string | boolean | undefined>): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  for (const key of configKeys()) {
    const raw = values[flagOf(key)];
    if (typeof raw !== 'string') continue;
    const n = Number(raw);
    const value = raw.trim() !== '' && Number.isFinite(n) ? n : raw;
    const issue = configIssue(key, value);
    if (issue !== null) throw new InputError('arguments', issue, { field: `--${flagOf(key)}` });
    config[key] = value;
  }
  return config;
}

/** `upshift sandbox`: serves the platforms until SIGTERM/SIGINT. */
export async function run(argv: string[]): Promise<void> {
  const { values } = parseFlags(
    argv,
    {
      port: { type: 'string' },
      host: { type: 'string' },
      seed: { type: 'string' },
      ...Object.fromEntries(configKeys().map((key) => [flagOf(key), { type: 'string' as const }])),
    },
    false,
  );
  if (values.help) return void console.log(help);
  const port = numberFlag(values.port, 'port', { min: 0, max: 65535 });
  const seed = numberFlag(values.seed, 'seed', { min: 0, max: 2 ** 32 - 1 });
  const host = values.host as string | undefined;
  const opts = {
    ...configFromFlags(values),
    ...(port === undefined ? {} : { port }),
    ...(seed === undefined ? {} : { seed }),
    ...(host === undefined ? {} : { host }),
  };
  let sandbox;
  try {
    sandbox = await startSandbox(opts);
  } catch (err) {
    // The run-time options were checked above; a host or port the sandbox refuses is an input error too.
    if ((err as Error).message.startsWith('invalid sandbox options')) {
      throw new InputError('arguments', (err as Error).message);
    }
    throw err;
  }
  console.log(`upshift sandbox listening on ${sandbox.url}`);
  await new Promise<void>((resolve) => {
    const stop = () => void sandbox.close().then(resolve, resolve);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
