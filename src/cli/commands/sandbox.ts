import { InputError } from '../../shared/index.js';
import { startSandbox } from '../../sandbox/index.js';
import { numberFlag, parseFlags } from '../flags.js';

export const help = `upshift sandbox [--host H] [--port N] [--latency-ms N] [--fail-rate R] [--throttle-rate R] [--conflict-rate R]
                [--reset-rate R] [--slow-rate R] [--slow-ms N] [--drop-write-rate R] [--limit-key-pattern RE]
                [--retry-after-s N] [--seed N]

Serves the four platforms' APIs from memory, for tests and demos. Load fixtures with
POST /__sandbox/fixtures; read counters from GET /__sandbox/stats. Faults are seeded shares of
requests: 5xx, 429 (with Retry-After), connection resets (before any change), answers slower
than --slow-ms (after the change), writes answered 2xx whose change is not kept
(--drop-write-rate). --limit-key-pattern's first capture group over a request's
target key names the value whose concurrency the stats record.

Examples:
  upshift sandbox --port 4010 --fail-rate 0.1 --throttle-rate 0.05
  curl -X POST localhost:4010/__sandbox/fixtures -H 'content-type: application/json' \\
    -d '{"alloy":{"workflows":{"wf_1":{"latestVersion":2}},"installs":[{"workflowId":"wf_1","userId":"u_1","version":1}]}}'`;

/** `upshift sandbox`: serves the platforms until SIGTERM/SIGINT. */
export async function run(argv: string[]): Promise<void> {
  const { values } = parseFlags(
    argv,
    {
      port: { type: 'string' },
      host: { type: 'string' },
      'latency-ms': { type: 'string' },
      'fail-rate': { type: 'string' },
      'throttle-rate': { type: 'string' },
      'conflict-rate': { type: 'string' },
      'retry-after-s': { type: 'string' },
      'reset-rate': { type: 'string' },
      'slow-rate': { type: 'string' },
      'slow-ms': { type: 'string' },
      'drop-write-rate': { type: 'string' },
      'limit-key-pattern': { type: 'string' },
      seed: { type: 'string' },
    },
    false,
  );
  if (values.help) return void console.log(help);
  const opts = Object.fromEntries(
    Object.entries({
      port: numberFlag(values.port, 'port', { min: 0, max: 65535 }),
      latencyMs: numberFlag(values['latency-ms'], 'latency-ms', { min: 0, max: 600_000, integer: false }),
      failRate: numberFlag(values['fail-rate'], 'fail-rate', { min: 0, max: 1, integer: false }),
      throttleRate: numberFlag(values['throttle-rate'], 'throttle-rate', { min: 0, max: 1, integer: false }),
      conflictRate: numberFlag(values['conflict-rate'], 'conflict-rate', { min: 0, max: 1, integer: false }),
      retryAfterS: numberFlag(values['retry-after-s'], 'retry-after-s', { min: 0, max: 3600, integer: false }),
      resetRate: numberFlag(values['reset-rate'], 'reset-rate', { min: 0, max: 1, integer: false }),
      slowRate: numberFlag(values['slow-rate'], 'slow-rate', { min: 0, max: 1, integer: false }),
      slowMs: numberFlag(values['slow-ms'], 'slow-ms', { min: 0, max: 3_600_000, integer: false }),
      dropWriteRate: numberFlag(values['drop-write-rate'], 'drop-write-rate', { min: 0, max: 1, integer: false }),
      seed: numberFlag(values.seed, 'seed', { min: 0, max: 2 ** 32 - 1 }),
    }).filter(([, v]) => v !== undefined),
  );
  const pattern = values['limit-key-pattern'] as string | undefined;
  const host = values.host as string | undefined;
  let sandbox;
  try {
    sandbox = await startSandbox({
      ...opts,
      ...(host === undefined ? {} : { host }),
      ...(pattern === undefined ? {} : { limitKeyPattern: pattern }),
    });
  } catch (err) {
    // Option values the sandbox refuses (a pattern without a capture group) are input errors.
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
