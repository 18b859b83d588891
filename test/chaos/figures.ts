import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

const FILE = new URL('../../RELIABILITY.md', import.meta.url);
const START = '<!-- figures:start -->';
const END = '<!-- figures:end -->';

/**
 * Writes a scenario's figures into RELIABILITY.md's table (between the markers), so every run
 * of the reliability suite, CI's included, leaves the file current. One row per scenario.
 */
export function recordFigures(scenario: string, figures: Record<string, unknown>): void {
  const text = readFileSync(FILE, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error('RELIABILITY.md has no figures markers');
  const rows = new Map<string, string>();
  for (const line of text.slice(a + START.length, b).split('\n')) {
    const m = /^\| `([^`]+)` \|/.exec(line);
    if (m) rows.set(m[1]!, line);
  }
  const cell = Object.entries(figures)
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v).replaceAll('|', '/') : String(v)}`)
    .join('; ');
  // The load average says how busy the machine was: the suite must pass on a loaded one too.
  const machine = `${cpus().length} x ${cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${loadavg()[0]!.toFixed(1)}`;
  rows.set(scenario, `| \`${scenario}\` | ${new Date().toISOString().slice(0, 16)}Z | ${machine} | ${cell} |`);
  const table = ['', '| scenario | run at | machine | figures |', '|---|---|---|---|', ...[...rows.keys()].sort().map((k) => rows.get(k)!), ''].join('\n');
  writeFileSync(FILE, text.slice(0, a + START.length) + table + text.slice(b));
}
