import { InputError, readStatus, type CampaignStatus, type UpshiftConfig } from '../../shared/index.js';
import { jsonForTerminal } from '../../shared/text.js';
import { numberFlag, parseFlags } from '../flags.js';
import { noCampaign, withRedis } from '../io.js';
import { printableStatus, watchCampaign, WATCH_DEFAULTS } from '../watch.js';
import { stepLine } from '../watch-render.js';

export const help = `upshift status <id> [--json] [--watch [--interval-ms N]]

Prints the campaign's status hash: state, counts by outcome, pending, active, retries.
--watch follows it live until it completes or is cancelled (Ctrl-C stops watching; the campaign
goes on): on a terminal a progress bar redrawn in place with rate, ETA and reasons; otherwise
one plain key=value line per change, at most one per --interval-ms (default ${WATCH_DEFAULTS.intervalMs}) besides
state changes. With --json, one status JSON per line instead. Exits 0 when the campaign ended.

Examples:
  upshift status onboarding-v3
  upshift status onboarding-v3 --json
  upshift status onboarding-v3 --watch
  upshift status onboarding-v3 --watch --interval-ms 5000 | tee progress.log`;

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
    ...(s.steps ?? []).map((_, n) => `  ${stepLine(s, n)}`),
    ...(s.waitingForWindow ? [`  waiting for a maintenance window: ${s.waitingForWindow} targets${s.nextWindowAt === undefined ? '' : `; next window opens ${new Date(s.nextWindowAt).toISOString()}`}`] : []),
    ...(s.pausedReason ? [`  paused: ${s.pausedReason}${s.breach?.step === undefined ? '' : ` (step ${s.breach.step + 1})`}`] : []),
    ...(s.cancelReason ? [`  cancelled: ${s.cancelReason}`] : []),
    ...(s.undoCampaign ? [`  undone by campaign ${s.undoCampaign}`] : []),
    ...(s.undoOf ? [`  takes back campaign ${s.undoOf}`] : []),
    ...(s.undoError ? [`  its undo could not be made: ${s.undoError}`] : []),
  ].join('\n');
}

export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, { json: { type: 'boolean' }, watch: { type: 'boolean' }, 'interval-ms': { type: 'string' } });
  if (values.help) return void console.log(help);
  const id = positionals[0];
  if (!id) throw new InputError('arguments', 'missing <id>', { fix: 'usage: upshift status <id>' });
  const intervalMs = numberFlag(values['interval-ms'], 'interval-ms', { min: WATCH_DEFAULTS.minIntervalMs });
  if (intervalMs !== undefined && !values.watch) throw new InputError('arguments', 'only applies to --watch', { field: '--interval-ms', fix: 'add --watch' });
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
  if (!status) throw noCampaign(id, config.prefix);
  console.log(values.json ? jsonForTerminal(status) : formatStatus(status));
}
