/**
 * One huge NDJSON line must cost time in proportion to what is read, and what is read must stop
 * at the line bound: a 32 MiB line and an 8 MiB line are both refused after about 1 MiB, naming
 * the line, in about the same time. (A parser that searched the whole pending line again for
 * every chunk took ~4 s for 8 MiB and ~48 s for 32 MiB.)
 *
 * The one elapsed-time assertion is a ratio of medians over interleaved rounds, so machine load
 * shifts both sides alike; a `.timing` file runs alone, after the others.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readNdjsonTargets } from '../../src/producer/index.js';
import { DEFAULTS, InputError } from '../../src/shared/index.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

/** Line 1 a plain target, line 2 `{"userId":"xxx…"}` of `bytes`, generated as it is read. */
function hugeLine(bytes: number): { stream: Readable; pulled: () => number } {
  let pulled = 0;
  const filler = Buffer.alloc(CHUNK, 'x');
  function* chunks() {
    const head = Buffer.from('{"userId":"ok"}\n{"userId":"');
    pulled += head.length;
    yield head;
    for (let sent = 0; sent < bytes; sent += CHUNK) {
      pulled += CHUNK;
      yield filler;
    }
    yield Buffer.from('"}\n');
  }
  return { stream: Readable.from(chunks(), { objectMode: false }), pulled: () => pulled };
}

/** Reads the stream to its end or its first error; returns the error and how much was pulled. */
async function refuse(bytes: number): Promise<{ err: unknown; pulled: number; lines: number }> {
  const { stream, pulled } = hugeLine(bytes);
  let lines = 0;
  try {
    for await (const _ of readNdjsonTargets(stream, 'huge.ndjson')) lines++;
    return { err: undefined, pulled: pulled(), lines };
  } catch (err) {
    return { err, pulled: pulled(), lines };
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('a huge NDJSON line', () => {
  it('8 MiB and 32 MiB lines are both refused early, naming the line, in times within 5x of each other', async () => {
    for (const size of [8 * MiB, 32 * MiB]) {
      const { err, pulled, lines } = await refuse(size);
      expect(err).toBeInstanceOf(InputError);
      expect(err).toMatchObject({ source: 'huge.ndjson', line: 2 });
      expect((err as Error).message).toContain(`longer than ${DEFAULTS.maxTargetLineBytes} bytes`);
      expect(lines).toBe(1);
      // Refused as soon as the line passed the bound: the rest of the line was never read.
      expect(pulled).toBeLessThan(DEFAULTS.maxTargetLineBytes + 4 * CHUNK);
    }

    // Several refusals per sample and the median of interleaved rounds: a GC pause or another
    // process's burst lands in one sample, not in the figure compared.
    const PER_SAMPLE = 32;
    const ROUNDS = 7;
    const timed = async (size: number): Promise<number> => {
      const t0 = performance.now();
      for (let i = 0; i < PER_SAMPLE; i++) await refuse(size);
      return performance.now() - t0;
    };
    await timed(8 * MiB); // warm-up: the first samples would also time the JIT
    await timed(32 * MiB);
    const small: number[] = [];
    const large: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      small.push(await timed(8 * MiB));
      large.push(await timed(32 * MiB));
    }
    const [t8, t32] = [median(small), median(large)];
    console.log(`ndjson refusal: 8 MiB ${(t8 / PER_SAMPLE).toFixed(2)} ms, 32 MiB ${(t32 / PER_SAMPLE).toFixed(2)} ms (median of ${ROUNDS} rounds)`);
    expect(Math.max(t8, t32) / Math.min(t8, t32)).toBeLessThan(5);
  });
});
