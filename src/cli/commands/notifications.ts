import { campaignKeys, DEFAULTS, InputError, readNotificationPage, type NotificationDelivery, type UpshiftConfig } from '../../shared/index.js';
import { escapeControlChars, jsonForTerminal } from '../../shared/text.js';
import { parseFlags } from '../flags.js';
import { noCampaign, withRedis } from '../io.js';

export const help = `upshift notifications <id> [--json]

The campaign's signed webhook deliveries (spec "notify"; README, "Notifications"), oldest event
first (the newest ${DEFAULTS.notificationsListed}; stderr says when older ones were left out): event id (the receiver's idempotency key), event, notifier, status (pending, delivered,
failed), attempts, and the last failed attempt's error. A pending delivery after a failed
attempt shows when the next one is due. --json prints one array of
{"eventId","event","notifier","status","attempts","lastError","createdAt","updatedAt","deliveredAt","failedAt","nextAt"}
(times in ms since the epoch; absent ones left out).

Examples:
  upshift notifications onboarding-v3
  upshift notifications onboarding-v3 --json`;

const time = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString());

export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values, positionals } = parseFlags(argv, { json: { type: 'boolean' } });
  if (values.help) return void console.log(help);
  const id = positionals[0];
  if (!id) throw new InputError('arguments', 'missing <id>', { fix: 'usage: upshift notifications <id>' });
  const { deliveries: list, truncated } = await withRedis(config, async (redis) => {
    if ((await redis.exists(campaignKeys(config.prefix, id).status)) === 0) throw noCampaign(id, config.prefix);
    return readNotificationPage(redis, config.prefix, id);
  });
  if (truncated) console.error(`(the newest ${DEFAULTS.notificationsListed} deliveries; older events left out)`);
  if (values.json) return void console.log(jsonForTerminal(list));
  if (list.length === 0) return void console.log(escapeControlChars(`campaign ${id} has no webhook deliveries`));
  const rows = [['EVENT ID', 'EVENT', 'NOTIFIER', 'STATUS', 'ATTEMPTS', 'CREATED', 'LAST', 'LAST ERROR']];
  for (const d of list) rows.push(row(d).map((v) => escapeControlChars(v)));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

function row(d: NotificationDelivery): string[] {
  const last = d.deliveredAt ?? d.failedAt ?? d.updatedAt;
  const next = d.status === 'pending' && d.nextAt !== undefined ? ` (next ${time(d.nextAt)})` : '';
  return [d.eventId, d.event, d.notifier, d.status + next, String(d.attempts), time(d.createdAt), time(last), d.lastError ?? ''];
}
