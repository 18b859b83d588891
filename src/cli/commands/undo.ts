import { undoCampaign, type UndoResult } from '../../producer/index.js';
import { DEFAULTS, InputError, loadConnections, type UpshiftConfig } from '../../shared/index.js';
import { escapeControlChars, jsonForTerminal } from '../../shared/text.js';
import { numberFlag, parseFlags } from '../flags.js';
import { withRedis } from '../io.js';

export const help = `upshift undo <id> [--dry-run] [--json] [--wait-ms N]

Makes campaign <id>-undo, which puts every target that <id> upgraded back as it was before, from
what the upgrade kept (spec "undo", on by default). It is a campaign like any other: workers run
it, and status, report, pause, resume, cancel and retry work on it. Each of its targets ends
upgraded/REVERTED, skipped/CHANGED_SINCE_UPGRADE (edited since: left alone), or failed with
NOT_REVERTIBLE or UNDO_DATA_EXPIRED (docs/REASONS.md).

A campaign still running is cancelled first, and its targets in flight are waited for (at most
--wait-ms, default ${DEFAULTS.undoWaitMs} ms; longer is exit 1 UNDO_WAIT_TIMEOUT: run undo again).
--dry-run makes <id>-undo-dry instead: it reads every target and changes nothing, and leaves a
running campaign running. Running undo again makes nothing new. Needs UPSHIFT_CONNECTIONS, as
enqueue does. With --json: {"campaignId","undoOf","total","created","cancelledOriginal"}.

Examples:
  upshift undo onboarding-v3 --dry-run
  upshift status onboarding-v3-undo-dry --watch           # what the undo would do
  upshift undo onboarding-v3
  upshift report onboarding-v3-undo --outcome skipped     # targets edited since, left as they are`;

export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, {
    'dry-run': { type: 'boolean' },
    json: { type: 'boolean' },
    'wait-ms': { type: 'string' },
  });
  if (values.help) return void console.log(help);
  const id = positionals[0];
  if (!id) throw new InputError('arguments', 'missing <id>', { fix: 'usage: upshift undo <id>' });
  const waitMs = numberFlag(values['wait-ms'], 'wait-ms', { min: 0 });
  // Checked before Redis: the undo campaign is validated against the registry as any campaign is.
  const connections = loadConnections();
  const result = await withRedis(config, (redis) =>
    undoCampaign(id, {
      redis,
      prefix: config.prefix,
      connections,
      dryRun: values['dry-run'] === true,
      ...(waitMs === undefined ? {} : { waitMs }),
    }),
  );
  if (values.json) {
    const { campaignId, undoOf, total, created, cancelledOriginal } = result;
    console.log(jsonForTerminal({ campaignId, undoOf, total, created, cancelledOriginal }));
  } else console.log(escapeControlChars(summary(result, values['dry-run'] === true)));
}

function summary(r: UndoResult, dryRun: boolean): string {
  const what = dryRun ? 'dry-run undo campaign' : 'undo campaign';
  const cancelled = r.cancelledOriginal ? `; campaign ${r.undoOf} was cancelled first` : '';
  return r.created
    ? `${what} ${r.campaignId} of ${r.undoOf} created: ${r.total} targets${cancelled}`
    : `${what} ${r.campaignId} of ${r.undoOf} exists already (${r.total} targets); nothing new enqueued${cancelled}`;
}
