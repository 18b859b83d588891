import { InputError } from '../shared/index.js';
import { startSandbox } from '../sandbox/index.js';
import { numberFlag, parseFlags } from './flags.js';

/** `upshift sandbox`: serves the platforms until SIGTERM/SIGINT. */
export async function runSandboxCommand(argv: string[], help: string): Promise<void> {
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
