import { pino, type Logger } from 'pino';
import { sealPlatforms, secretHeaders } from './operations/index.js';

export type { Logger };

/**
 * Redaction paths for the registered platforms' credential headers and `extra` ones, under each
 * of `parents` (`''`, `'*.'`, `'req.'`): `headers.authorization`, `*.headers["x-authorization"]`.
 * Seals the platform table: a platform registered later would not be redacted.
 */
export function secretHeaderPaths(parents: readonly string[], extra: readonly string[] = []): string[] {
  sealPlatforms('log redaction (secretHeaderPaths)');
  const names = [...new Set([...extra, ...secretHeaders()])];
  const prop = (name: string): string => (/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `["${name}"]`);
  return parents.flatMap((parent) => names.map((name) => `${parent}headers${prop(name)}`));
}

/**
 * Paths scrubbed from every log line. Upshift never logs credentials on purpose; this is the
 * net under that rule (an error object that carries request headers, a future debug line).
 */
const redactPaths = (): string[] => ['credential', '*.credential', 'password', '*.password', ...secretHeaderPaths(['', '*.'])];

/** Logs go to stderr unless `destination` says otherwise: stdout belongs to command output (`--json`, reports). */
export function createLogger(level: string, name = 'upshift', destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino({ name, level, redact: { paths: redactPaths(), censor: '[redacted]' } }, destination);
}
