import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InputError } from '../shared/index.js';

/** Parsed command-line flags: every command takes `--help` / `-h`. */
export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** `parseArgs` whose errors are InputErrors (exit 2), with `--help` added to every command. */
export function parseFlags(argv: string[], options: ParseArgsConfig['options'], allowPositionals = true): Parsed {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals }) as Parsed;
  } catch (err) {
    throw new InputError('arguments', (err as Error).message);
  }
}

/**
 * A numeric flag's value, or undefined when the flag is absent; outside [min, max] (or not a
 * whole number, for `integer`) it is an InputError naming the flag.
 */
export function numberFlag(
  v: string | boolean | undefined,
  name: string,
  { min, max = Number.MAX_SAFE_INTEGER, integer = true }: { min: number; max?: number; integer?: boolean },
): number | undefined {
  if (v === undefined || typeof v === 'boolean') return undefined;
  const n = Number(v);
  if (v.trim() === '' || !(integer ? Number.isInteger(n) : Number.isFinite(n)) || n < min || n > max) {
    const what = integer ? 'an integer' : 'a number';
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new InputError('arguments', `must be ${what} ${range}`, { field: `--${name}` });
  }
  return n;
}
