import { listCampaigns } from '../../producer/index.js';
import type { UpshiftConfig } from '../../shared/index.js';
import { escapeControlChars, jsonForTerminal } from '../../shared/text.js';
import { parseFlags } from '../flags.js';
import { withRedis } from '../io.js';

export const help = `upshift list [--json]

Every campaign still in Redis, newest first: state, counts, age. --json prints one array.

Examples:
  upshift list
  UPSHIFT_PREFIX=staging upshift list --json`;

function formatAge(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values } = parseFlags(argv, { json: { type: 'boolean' } });
  if (values.help) return void console.log(help);
  const list = await withRedis(config, (redis) => listCampaigns({ redis, prefix: config.prefix }));
  if (values.json) return void console.log(jsonForTerminal(list));
  const rows = [['ID', 'STATE', 'TOTAL', 'UPGRADED', 'SKIPPED', 'FAILED', 'PENDING', 'ACTIVE', 'AGE']];
  for (const c of list) {
    rows.push([c.id, c.state, c.total, c.upgraded, c.skipped, c.failed, c.pending, c.active, formatAge(c.ageMs)].map((v) => escapeControlChars(String(v))));
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}
