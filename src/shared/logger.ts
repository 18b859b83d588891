import { pino, type Logger } from 'pino';
import { sealPlatforms, secretHeaders } from './operations/index.js';

export type { Logger };

/**
 * Redaction paths for `headers` (under each of `parents`, e.g. `''`, `'*.'`, `'req.'`), one per
 * header name: `headers.authorization`, `*.headers["x-authorization"]`.
 */
export function headerPaths(names: readonly string[], parents: readonly string[]): string[] {
  const prop = (name: string): string => (/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `["${name}"]`);
  return parents.flatMap((parent) => names.map((name) => `${parent}headers${prop(name)}`));
}

/**
 * Paths scrubbed from every log line. Upshift never logs credentials on purpose; this is the
 * net under that rule (an error object that carries request headers, a future debug line).
 * The platforms' credential headers come from the platform table.
 */
function redactPaths(): string[] {
  sealPlatforms('createLogger (log redaction)');
  return ['credential', '*.credential', 'password', '*.password', ...headerPaths(secretHeaders(), ['', '*.'])];
}

/** Logs go to stderr unless `destination` says otherwise: stdout belongs to command output (`--json`, reports). */
export function createLogger(level: string, name = 'upshift', destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino({ name, level, redact: { paths: redactPaths(), censor: '[redacted]' } }, destination);
}
