/**
 * `upshift status <id> --watch`: live progress of one campaign.
 *
 * The figures (watch-progress.ts) and the rendering (watch-render.ts) are pure, so they are
 * unit-tested without Redis or a terminal; `watchCampaign` here is the only part that does I/O.
 * Both are re-exported: this module is the watch's one entry point.
 */
import { eventsChannel, readStatus, type CampaignStatus, type RedisClient } from '../shared/index.js';
import { jsonForTerminal } from '../shared/text.js';
import { noCampaign } from './io.js';
import { addSample, doneCount, isFinal, progressOf, WATCH_DEFAULTS, type Sample } from './watch-progress.js';
import { changeKey, ESC, redrawPrefix, renderFrame, renderPlainLine, renderSummary } from './watch-render.js';

export * from './watch-progress.js';
export * from './watch-render.js';

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
  readonly redis: RedisClient;
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
      throw noCampaign(opts.id, opts.prefix);
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
