import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import type { SourcedTarget } from './enqueue.js';
import { DEFAULTS, InputError } from '../shared/index.js';

/** A line longer than the bound: an `InputError` (exit 2), which the API answers 413. */
export class LineTooLongError extends InputError {
  constructor(
    source: string,
    line: number,
    readonly limitBytes: number,
  ) {
    super(source, `longer than ${limitBytes} bytes; put one target object per line`, { line });
    this.name = 'LineTooLongError';
  }
}

export interface NdjsonOptions {
  /** Longest line accepted, in bytes without its line ending (default `DEFAULTS.maxTargetLineBytes`). */
  readonly maxLineBytes?: number;
}

/**
 * Streams an NDJSON stream as parsed values with their 1-based line numbers; blank lines are
 * skipped. Lines end at `\n` (a `\r` before it is dropped); a lone `\r` is JSON whitespace, not
 * a line break, so line numbers match what an editor shows. Memory stays flat however long the
 * stream is, and a line is refused (`LineTooLongError`) as soon as it passes `maxLineBytes`,
 * before the rest of it is read.
 */
export async function* readNdjsonTargets(input: Readable, source: string, opts: NdjsonOptions = {}): AsyncIterable<SourcedTarget> {
  const max = opts.maxLineBytes ?? DEFAULTS.maxTargetLineBytes;
  const decoder = new StringDecoder('utf8');
  // The line so far, as the pieces it arrived in: each chunk is searched for LF once and the
  // pieces joined once per line, so the cost is linear in the input however long a line is.
  let parts: string[] = [];
  let pendingBytes = 0;
  let line = 0;
  const parse = (text: string): SourcedTarget | undefined => {
    line++;
    const body = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (body.trim() === '') return undefined;
    try {
      return { line, value: JSON.parse(body) as unknown };
    } catch (err) {
      throw new InputError(source, `not valid JSON: ${(err as Error).message}`, { line });
    }
  };
  /** Ends the pending line with `last` (the text before its LF). */
  const endLine = (last: string): SourcedTarget | undefined => {
    // A UTF-16 unit is at most 3 UTF-8 bytes: most lines are judged short without counting.
    if (pendingBytes + last.length * 3 > max) {
      const crlf = last === '' ? parts.at(-1)?.endsWith('\r') : last.endsWith('\r');
      if (pendingBytes + Buffer.byteLength(last) - (crlf ? 1 : 0) > max) throw new LineTooLongError(source, line + 1, max);
    }
    if (parts.length === 0) return parse(last);
    parts.push(last);
    const text = parts.join('');
    parts = [];
    pendingBytes = 0;
    return parse(text);
  };
  /** Adds a piece with no LF to the pending line; refused once past the bound (a CR may still end it). */
  const keep = (piece: string): void => {
    if (piece === '') return;
    pendingBytes += Buffer.byteLength(piece);
    if (pendingBytes > max + 1) throw new LineTooLongError(source, line + 1, max);
    parts.push(piece);
  };
  for await (const chunk of input) {
    const text = typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
    let from = 0;
    let at: number;
    while ((at = text.indexOf('\n', from)) >= 0) {
      const piece = text.slice(from, at);
      from = at + 1;
      const item = endLine(piece);
      if (item) yield item;
    }
    keep(text.slice(from));
  }
  keep(decoder.end());
  if (parts.length > 0) {
    const item = endLine('');
    if (item) yield item;
  }
}
