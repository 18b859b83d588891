import { retryCampaign } from '../../producer/index.js';
import { InputError, type UpshiftConfig } from '../../shared/index.js';
import { escapeControlChars } from '../../shared/text.js';
import { parseFlags } from '../flags.js';
import { withRedis } from '../io.js';

export const help = `upshift retry <id> [--reason CODE]

Runs the campaign's failed targets again (only those failed with CODE, when given). Their earlier
outcome is replaced; counters stay exact. Reason codes: docs/REASONS.md.

Examples:
  upshift retry onboarding-v3
  upshift retry onboarding-v3 --reason SERVER_ERROR`;

export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, { reason: { type: 'string' } });
  if (values.help) return void console.log(help);
  const id = positionals[0];
  if (!id) throw new InputError('arguments', 'missing <id>');
  const reason = values.reason as string | undefined;
  const n = await withRedis(config, (redis) =>
    retryCampaign(id, { redis, prefix: config.prefix, ...(reason === undefined ? {} : { reason }) }),
  );
  console.log(`campaign ${escapeControlChars(id)}: ${n} failed targets put back to run`);
}
