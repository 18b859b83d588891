import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { enqueueSourced, readNdjsonTargets } from '../../producer/index.js';
import { InputError, loadConnections, parseSpec, type UpshiftConfig } from '../../shared/index.js';
import { parseFlags } from '../flags.js';
import { withRedis } from '../io.js';

export const help = `upshift enqueue <spec.json> [--targets <file.ndjson|->] [--dry-run] [--json]

Validates the spec and every target, then creates the campaign. Nothing is enqueued when any
line is invalid (exit 2, naming the line and field). Re-running with the same campaign id
creates no duplicate work. --dry-run (or "dryRun": true) makes only the read calls and records
would-upgrade / would-skip / would-fail per target, changing nothing on the platform.

Examples:
  upshift enqueue campaign.json --targets users.ndjson
  upshift enqueue campaign.json --targets users.ndjson --dry-run
  cat users.ndjson | upshift enqueue campaign.json --targets - --json`;

export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, {
    targets: { type: 'string' },
    json: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
  });
  if (values.help) return void console.log(help);
  const specPath = positionals[0];
  if (!specPath) throw new InputError('arguments', 'missing <spec.json>');
  let text: string;
  try {
    text = await readFile(specPath, 'utf8');
  } catch (err) {
    throw new InputError(specPath, `cannot read: ${(err as Error).message}`, { fix: 'check the path' });
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
