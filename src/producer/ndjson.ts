import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import type { SourcedTarget } from './enqueue.js';
import { InputError } from '../shared/index.js';

/**
 * Streams an NDJSON stream as parsed values with their 1-based line numbers; blank lines are
 * skipped. Lines end at `\n` (a `\r` before it is dropped); a lone `\r` is JSON whitespace, not
 * a line break, so line numbers match what an editor shows. Memory stays flat however long the
 * stream is.
 */
export async function* readNdjsonTargets(input: Readable, source: string): AsyncIterable<SourcedTarget> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
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
  for await (const chunk of input) {
    rest += typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
    let from = 0;
    let at: number;
    while ((at = rest.indexOf('\n', from)) >= 0) {
      const item = parse(rest.slice(from, at));
      from = at + 1;
      if (item) yield item;
    }
    rest = rest.slice(from);
  }
  rest += decoder.end();
  if (rest !== '') {
    const item = parse(rest);
    if (item) yield item;
  }
}
