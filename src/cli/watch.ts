/**
 * `upshift status <id> --watch`: live progress of one campaign.
 *
 * The rendering is pure (a status and a few measured figures in, text out) so it is unit-tested
 * without Redis or a terminal; `watchCampaign` below is the only part that does I/O.
 */
import { eventsChannel, InputError, readStatus, type CampaignStatus, type Redis } from '../shared/index.js';
import { escapeControlChars, jsonForTerminal } from '../shared/text.js';

/**
 * How often the status hash is read while watching, and the span the rate is measured over.
 * The rate window is long enough to smooth the bursts of a rate-limited key, short enough that a
 * pause shows up as a falling rate within seconds.
 */
export const WATCH_DEFAULTS = Object.freeze({ intervalMs: 1000, minIntervalMs: 100, rateWindowMs: 10_000 });

/** One reading of the finished-target count, on the watcher's own monotonic clock. */
export interface Sample {
  readonly atMs: number;
  readonly done: number;
}

/** What the renderers need besides the status: measured, not stored in Redis. */
export interface Progress {
  /** Targets finished per second, or undefined while there is nothing to measure. */
  readonly ratePerS: number | undefined;
  /** Time left at that rate; undefined when it cannot be told (no rate, or a rate of 0). */
  readonly etaMs: number | undefined;
}

/**
 * The status with every text field from Redis escaped (`\u001b` for ESC, and so on): whoever
 * could write the hash must not be able to drive the watching terminal.
 */
export function printableStatus(s: CampaignStatus): CampaignStatus {
  const e = escapeControlChars;
  return {
    ...s,
    id: e(s.id),
    state: e(s.state),
    operation: e(s.operation),
    name: e(s.name),
    pausedReason: s.pausedReason === undefined ? undefined : e(s.pausedReason),
    reasons: Object.fromEntries(Object.entries(s.reasons).map(([code, n]) => [e(code), n])),
  };
}

/** Targets with an outcome, real or dry-run. */
export function doneCount(s: CampaignStatus): number {
  return s.upgraded + s.skipped + s.failed + s.wouldUpgrade + s.wouldSkip + s.wouldFail;
}

/**
 * The campaign will not change by itself any more. `cancelled` counts as soon as it is set:
 * no new target starts, and the in-flight ones settle whether anyone watches or not.
 */
export function isFinal(s: CampaignStatus): boolean {
  return s.finishedAt !== undefined || s.state === 'completed' || s.state === 'cancelled';
}

/** Floor-rounded percentage; 100 only once everything is done (an empty, finished campaign too). */
export function percent(s: CampaignStatus): number {
  if (s.total === 0) return isFinal(s) ? 100 : 0;
  return Math.min(100, Math.floor((doneCount(s) / s.total) * 100));
}

/**
 * Adds a sample and drops those older than the window, keeping the newest one before the window
 * so the measured span covers the whole window even when readings are further apart than it.
 */
export function addSample(samples: readonly Sample[], sample: Sample, windowMs: number): Sample[] {
  const all = [...samples, sample];
  const cutoff = sample.atMs - windowMs;
  let first = 0;
  while (first + 1 < all.length && all[first + 1]!.atMs <= cutoff) first++;
  return all.slice(first);
}

/** Finished targets per second between the oldest and newest sample; undefined without a span. */
export function rateFromSamples(samples: readonly Sample[]): number | undefined {
  if (samples.length < 2) return undefined;
  const oldest = samples[0]!;
  const newest = samples[samples.length - 1]!;
  const spanMs = newest.atMs - oldest.atMs;
  if (spanMs <= 0) return undefined;
  return (Math.max(0, newest.done - oldest.done) / spanMs) * 1000;
}

/**
 * The campaign's average rate so far, from the status hash alone (both times are Redis's clock,
 * so the watcher's clock does not matter): the estimate shown before two samples exist.
 */
export function lifetimeRate(s: CampaignStatus): number | undefined {
  const end = s.finishedAt ?? s.updatedAt;
  if (s.createdAt === undefined || end === undefined || end <= s.createdAt) return undefined;
  const done = doneCount(s);
  return done === 0 ? undefined : (done / (end - s.createdAt)) * 1000;
}

export function etaMs(s: CampaignStatus, ratePerS: number | undefined): number | undefined {
  const remaining = Math.max(0, s.total - doneCount(s));
  if (remaining === 0) return 0;
  if (ratePerS === undefined || ratePerS <= 0) return undefined;
  return (remaining / ratePerS) * 1000;
}

/** The figures for one frame: the windowed rate when measured, else the campaign's average. */
export function progressOf(s: CampaignStatus, samples: readonly Sample[]): Progress {
  const ratePerS = rateFromSamples(samples) ?? lifetimeRate(s);
  return { ratePerS, etaMs: etaMs(s, ratePerS) };
}

/** `42s`, `3m05s`, `2h07m`, `1d02h`; `?` when unknown. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '?';
  const s = Math.ceil(ms / 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** One decimal below 10/s (slow campaigns are where the figure matters), whole numbers above. */
export function formatRate(ratePerS: number | undefined): string {
  if (ratePerS === undefined) return '?';
  return ratePerS < 10 ? ratePerS.toFixed(1) : String(Math.round(ratePerS));
}

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

const ESC = '\u001b[';
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
  return undefined;
}

export interface TtyFrameOptions {
  readonly columns: number | undefined;
  readonly color: boolean;
  /** Most reasons listed before "+N more". */
  readonly maxReasons?: number;
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
  ]);
}

/** Moves the cursor to the start of a frame `lines` tall and clears from there down. */
export function redrawPrefix(lines: number): string {
  return lines > 0 ? `${ESC}${lines}F${ESC}0J` : '';
}

/* ------------------------------------------------------------------------------------------------
 * The loop: wakes on the campaign's events (state changes, the end) and every interval (counts,
 * which change without an event), renders, and stops at a final state or on `signal`.
 * ---------------------------------------------------------------------------------------------- */

export interface WatchOutput {
  write(chunk: string): boolean;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface WatchOptions {
  readonly redis: Redis;
  readonly prefix: string;
  readonly id: string;
  readonly intervalMs?: number;
  readonly out: WatchOutput;
  /** Ctrl-C: stop watching (the campaign goes on). */
  readonly signal?: AbortSignal;
  /** One status JSON per change instead of text lines (never a frame). */
  readonly json?: boolean;
  /** Colours on a terminal; off with NO_COLOR. */
  readonly color?: boolean;
  /** Monotonic clock for the rate (tests may pass their own). */
  readonly nowMs?: () => number;
}

/** Watches until the campaign is final or `signal` fires; resolves with the last status read. */
export async function watchCampaign(opts: WatchOptions): Promise<CampaignStatus> {
  const intervalMs = opts.intervalMs ?? WATCH_DEFAULTS.intervalMs;
  const nowMs = opts.nowMs ?? (() => performance.now());
  const tty = opts.out.isTTY === true && !opts.json;
  const channel = eventsChannel(opts.prefix);

  let wakeNow: (() => void) | undefined;
  let woken = false;
  const wake = () => {
    if (wakeNow) wakeNow();
    else woken = true;
  };
  const sleep = () =>
    new Promise<void>((resolve) => {
      if (woken || opts.signal?.aborted) {
        woken = false;
        return resolve();
      }
      const timer = setTimeout(done, intervalMs);
      function done() {
        clearTimeout(timer);
        wakeNow = undefined;
        woken = false;
        resolve();
      }
      wakeNow = done;
    });

  const sub = opts.redis.duplicate();
  sub.on('error', () => undefined);
  sub.on('message', (_channel: string, message: string) => {
    try {
      if ((JSON.parse(message) as { id?: unknown }).id === opts.id) wake();
    } catch {
      // Not ours to judge: other publishers may share the channel.
    }
  });
  opts.signal?.addEventListener('abort', wake);
  let frameLines = 0;
  try {
    // Subscribe before the first read, so a change between the two cannot go unseen.
    await sub.subscribe(channel);
    let status = await readStatus(opts.redis, opts.prefix, opts.id);
    if (!status) {
      throw new InputError('arguments', `no campaign "${opts.id}" under prefix "${opts.prefix}"; list campaigns with "upshift list" or set UPSHIFT_PREFIX`);
    }
    if (tty) opts.out.write(`${ESC}?25l`);
    let samples: Sample[] = [];
    let lastKey: string | undefined;
    let lastState: string | undefined;
    let lastPrintMs = -Infinity;
    for (;;) {
      const at = nowMs();
      samples = addSample(samples, { atMs: at, done: doneCount(status) }, Math.max(WATCH_DEFAULTS.rateWindowMs, 3 * intervalMs));
      const progress = progressOf(status, samples);
      const final = isFinal(status);
      if (tty) {
        const lines = renderFrame(status, progress, { columns: opts.out.columns, color: opts.color ?? false });
        opts.out.write(redrawPrefix(frameLines) + lines.join('\n') + '\n');
        frameLines = lines.length;
      } else {
        const key = changeKey(status);
        // A state change (and the end) prints at once; count changes at most once an interval.
        // (0.9: a timer may fire a hair before a full interval has passed on this clock.)
        if (key !== lastKey && (status.state !== lastState || final || at - lastPrintMs >= intervalMs * 0.9)) {
          opts.out.write((opts.json ? jsonForTerminal(status) : renderPlainLine(status, progress)) + '\n');
          lastKey = key;
          lastState = status.state;
          lastPrintMs = at;
        }
      }
      if (final) {
        if (!opts.json) opts.out.write(renderSummary(status) + '\n');
        return status;
      }
      await sleep();
      if (opts.signal?.aborted) return status;
      const next = await readStatus(opts.redis, opts.prefix, opts.id);
      if (!next) throw new Error(`campaign "${opts.id}" disappeared from Redis while watched (deleted or expired)`);
      status = next;
    }
  } finally {
    if (tty) opts.out.write(`${ESC}?25h`);
    opts.signal?.removeEventListener('abort', wake);
    sub.disconnect();
  }
}
