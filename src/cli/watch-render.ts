/**
 * The text of `upshift status --watch`: a frame redrawn in place on a terminal, a plain line per
 * change elsewhere, a summary at the end. Pure (a status and its figures in, text out).
 */
import type { CampaignStatus } from '../shared/index.js';
import { escapeControlChars } from '../shared/text.js';
import { doneCount, etaMs, formatDuration, formatRate, isFinal, percent, printableStatus, Progress } from './watch-progress.js';

/** The three outcome counts shown, real or dry-run. */
function outcomes(s: CampaignStatus): { label: string; key: string; n: number }[] {
  return s.dryRun
    ? [
        { label: 'would upgrade', key: 'would-upgrade', n: s.wouldUpgrade },
        { label: 'would skip', key: 'would-skip', n: s.wouldSkip },
        { label: 'would fail', key: 'would-fail', n: s.wouldFail },
      ]
    : [
        { label: 'upgraded', key: 'upgraded', n: s.upgraded },
        { label: 'skipped', key: 'skipped', n: s.skipped },
        { label: 'failed', key: 'failed', n: s.failed },
      ];
}

/** Reasons by count, most frequent first (ties by name, so frames do not flicker). */
export function sortedReasons(s: CampaignStatus): [string, number][] {
  return Object.entries(s.reasons).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Width of the bar's inside for a terminal `columns` wide, leaving room for `besideChars` of text
 * and the brackets: at most 50 cells; 0 (no bar) when fewer than 10 would fit.
 */
export function barWidth(columns: number | undefined, besideChars: number): number {
  const cols = columns === undefined || columns <= 0 ? 80 : columns;
  const width = Math.min(50, cols - 1 - besideChars - 2);
  return width < 10 ? 0 : width;
}

export const ESC = '\u001b[';
const COLORS = { upgraded: `${ESC}32m`, skipped: `${ESC}33m`, failed: `${ESC}31m`, rest: `${ESC}2m`, reset: `${ESC}0m` };
const GLYPHS = { upgraded: '█', skipped: '▒', failed: 'x', rest: '░' };

/**
 * The bar's inside, exactly `width` cells: upgraded, then skipped, then failed, then what is left.
 * Boundaries are floors of cumulative shares, so the bar is full only when every target is done
 * and a segment never steals a cell from the one before it.
 */
export function renderBar(s: CampaignStatus, width: number, color = false): string {
  const [up, skip, fail] = outcomes(s).map((o) => o.n) as [number, number, number];
  const total = Math.max(s.total, up + skip + fail);
  const cell = (n: number) => (total === 0 ? (isFinal(s) ? width : 0) : Math.floor((n * width) / total));
  const b1 = cell(up);
  const b2 = total === 0 ? b1 : cell(up + skip);
  const b3 = total === 0 ? b1 : cell(up + skip + fail);
  const parts: [keyof typeof GLYPHS, number][] = [
    ['upgraded', b1],
    ['skipped', b2 - b1],
    ['failed', b3 - b2],
    ['rest', width - b3],
  ];
  return parts
    .filter(([, n]) => n > 0)
    .map(([k, n]) => (color ? `${COLORS[k]}${GLYPHS[k].repeat(n)}${COLORS.reset}` : GLYPHS[k].repeat(n)))
    .join('');
}

/** Cuts a line (no escape codes in it) so it never wraps: a wrapped line breaks the redraw. */
function fit(line: string, columns: number | undefined): string {
  const max = (columns === undefined || columns <= 0 ? 80 : columns) - 1;
  return line.length <= max ? line : `${line.slice(0, Math.max(0, max - 1))}…`;
}

/** The line telling the operator what a waiting campaign needs, if anything. */
function waitingNote(s: CampaignStatus): string | undefined {
  if (s.state === 'paused') {
    const why = s.breach
      ? `failure budget exceeded: ${s.breach.failed} failed of ${s.breach.samples} (${(s.breach.ratio * 100).toFixed(1)}%)`
      : s.pausedReason === undefined || s.pausedReason === 'OPERATOR'
        ? 'by an operator'
        : s.pausedReason;
    return `paused (${why}); continue with: upshift resume ${s.id}`;
  }
  if (s.state === 'gated') return `waiting at a manual gate; open the next step with: upshift promote ${s.id}`;
  if (s.state === 'running' && (s.waitingForWindow ?? 0) > 0) return windowNote(s);
  return undefined;
}

/** Maintenance windows: how many targets wait for theirs, and when the next opens. */
function windowNote(s: CampaignStatus): string {
  const next = s.nextWindowAt === undefined ? '' : `; next window opens ${new Date(s.nextWindowAt).toISOString()}`;
  return `${s.waitingForWindow} targets waiting for a maintenance window${next}`;
}

export interface TtyFrameOptions {
  readonly columns: number | undefined;
  readonly color: boolean;
  /** Most reasons listed before "+N more". */
  readonly maxReasons?: number;
  /** Steps listed from the first (the current one too, wherever it is) before "+N more steps". */
  readonly maxSteps?: number;
}

/**
 * Step `n` (0-based) of a staged rollout, in `upshift status` and its `--watch` alike: its
 * cohort, counts and failure ratio, marked `>` when it is the running step (an ended campaign
 * has none).
 */
export function stepLine(s: CampaignStatus, n: number): string {
  const st = s.steps![n]!;
  const mark = n === s.rolloutStep && !isFinal(s) ? '>' : ' ';
  return `${mark} step ${n + 1}/${s.steps!.length} ${st.cohort}: ${st.targets} targets, upgraded ${st.upgraded}, skipped ${st.skipped}, failed ${st.failed} (failure ratio ${st.failureRatio})`;
}

/** The lines of one terminal frame (redrawn in place by the caller). */
export function renderFrame(status: CampaignStatus, p: Progress, opts: TtyFrameOptions): string[] {
  const s = printableStatus(status);
  const done = doneCount(s);
  const step =
    s.rolloutStep !== undefined && s.rolloutSteps !== undefined ? ` · step ${s.rolloutStep + 1}/${s.rolloutSteps}` : '';
  const head = `${s.id}${s.name ? ` (${s.name})` : ''} · ${s.state}${s.dryRun ? ' (dry run)' : ''}${step} · ${s.operation}`;
  const tail =
    `  ${done}/${s.total}  ${String(percent(s)).padStart(3)}%  ${formatRate(p.ratePerS)} targets/s` +
    (isFinal(s) ? '' : `  ETA ${formatDuration(p.etaMs)}`);
  const width = barWidth(opts.columns, tail.length);
  const bar = width === 0 ? fit(tail.trimStart(), opts.columns) : `[${renderBar(s, width, opts.color)}]${tail}`;
  const counts =
    outcomes(s)
      .map((o) => `${o.label} ${o.n}`)
      .join('  ') + `  · pending ${s.pending}  active ${s.active}`;
  const lines = [fit(head, opts.columns), bar, fit(counts, opts.columns)];
  // A staged rollout's steps, as `upshift status` prints them: the operator judges each cohort
  // by its own failure ratio, which the campaign's totals hide.
  // A frame is redrawn in place and must fit the screen: a plan of many steps shows its first
  // few and the current one.
  const steps = s.steps ?? [];
  const maxSteps = opts.maxSteps ?? 3;
  let listed = 0;
  for (let n = 0; n < steps.length; n++) {
    if (n >= maxSteps && n !== s.rolloutStep) continue;
    listed++;
    lines.push(fit(stepLine(s, n), opts.columns));
  }
  if (listed < steps.length) lines.push(fit(`  +${steps.length - listed} more steps (upshift status ${s.id})`, opts.columns));
  const reasons = sortedReasons(s);
  if (reasons.length > 0) {
    const max = opts.maxReasons ?? 6;
    const shown = reasons.slice(0, max).map(([code, n]) => `${code} ${n}`);
    const more = reasons.length > max ? `, +${reasons.length - max} more` : '';
    lines.push(fit(`reasons: ${shown.join(', ')}${more}`, opts.columns));
  }
  const note = waitingNote(s);
  if (note) lines.push(fit(note, opts.columns));
  return lines;
}

/**
 * One plain line for logs and pipes: `key=value` fields after the id and state, no escape codes.
 * Example: `onboarding-v3 running 512/1000 51% upgraded=500 skipped=10 failed=2 pending=480 active=8 rate=41.2/s eta=12s`
 */
export function renderPlainLine(status: CampaignStatus, p: Progress): string {
  const s = printableStatus(status);
  const fields = [
    `${s.id} ${s.state} ${doneCount(s)}/${s.total} ${percent(s)}%`,
    ...outcomes(s).map((o) => `${o.key}=${o.n}`),
    `pending=${s.pending}`,
    `active=${s.active}`,
    `rate=${formatRate(p.ratePerS)}/s`,
    `eta=${isFinal(s) ? '0s' : formatDuration(p.etaMs)}`,
  ];
  if (s.rolloutStep !== undefined && s.rolloutSteps !== undefined) fields.push(`step=${s.rolloutStep + 1}/${s.rolloutSteps}`);
  if (s.state === 'paused' && s.pausedReason) fields.push(`paused=${s.pausedReason}`);
  if ((s.waitingForWindow ?? 0) > 0) {
    fields.push(`waitingForWindow=${s.waitingForWindow}`);
    if (s.nextWindowAt !== undefined) fields.push(`nextWindowAt=${new Date(s.nextWindowAt).toISOString()}`);
  }
  const reasons = sortedReasons(s);
  if (reasons.length > 0) fields.push(`reasons=${reasons.map(([code, n]) => `${code}:${n}`).join(',')}`);
  return fields.join(' ');
}

/** The closing line once the campaign is final: how long it took and where to look next. */
export function renderSummary(status: CampaignStatus): string {
  const s = printableStatus(status);
  const took =
    s.createdAt !== undefined && s.finishedAt !== undefined ? ` in ${formatDuration(s.finishedAt - s.createdAt)}` : '';
  const counts = outcomes(s)
    .map((o) => `${o.label} ${o.n}`)
    .join(', ');
  const inFlight = s.finishedAt === undefined && s.active > 0 ? `; ${s.active} in flight still finish` : '';
  const failed = s.dryRun ? s.wouldFail : s.failed;
  const next = failed > 0 ? `; failures: upshift report ${s.id} --outcome ${s.dryRun ? 'would-fail' : 'failed'}` : '';
  return `campaign ${s.id} ${s.state}${took}: ${counts}${inFlight}${next}`;
}

/**
 * What makes a plain line worth printing: everything but the rate and ETA, which move on every
 * reading and would turn "one line per change" into one line per tick.
 */
export function changeKey(s: CampaignStatus): string {
  return JSON.stringify([
    s.state,
    s.total,
    s.upgraded,
    s.skipped,
    s.failed,
    s.wouldUpgrade,
    s.wouldSkip,
    s.wouldFail,
    s.pending,
    s.active,
    s.pausedReason ?? '',
    s.rolloutStep ?? -1,
    sortedReasons(s),
    s.waitingForWindow ?? 0,
    s.nextWindowAt ?? 0,
  ]);
}

/** Moves the cursor to the start of a frame `lines` tall and clears from there down. */
export function redrawPrefix(lines: number): string {
  return lines > 0 ? `${ESC}${lines}F${ESC}0J` : '';
}
