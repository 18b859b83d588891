import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths scrubbed from every log line. Upshift never logs credentials on purpose; this is the
 * net under that rule (an error object that carries request headers, a future debug line).
 */
const REDACT = [
  'credential',
  '*.credential',
  'password',
  '*.password',
  'headers.authorization',
  'headers["x-authorization"]',
  'headers["nected-api-key"]',
  '*.headers.authorization',
  '*.headers["x-authorization"]',
  '*.headers["nected-api-key"]',
];

export function createLogger(level: string, name = 'upshift'): Logger {
  // Logs go to stderr: stdout belongs to command output (`--json`, reports).
  return pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' } }, pino.destination(2));
}
