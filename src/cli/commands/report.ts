import { csvHeader, csvLine, InputError, readStatus, REPORT_OUTCOMES, streamReport, type UpshiftConfig } from '../../shared/index.js';
import { jsonForTerminal } from '../../shared/text.js';
import { parseFlags } from '../flags.js';
import { noCampaign, withRedis, write } from '../io.js';

export const help = `upshift report <id> [--outcome upgraded|skipped|failed|pending] [--format ndjson|csv]

Streams one record per target (target, outcome, reason, attempts, error, at), pending ones too.

Examples:
  upshift report onboarding-v3 --outcome failed --format csv > failed.csv
  upshift report onboarding-v3 | grep RETRIES_EXHAUSTED`;

const OUTCOME_FILTERS: readonly string[] = REPORT_OUTCOMES;

export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, { outcome: { type: 'string' }, format: { type: 'string' } });
  if (values.help) return void console.log(help);
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
      throw noCampaign(id, config.prefix);
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
