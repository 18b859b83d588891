import { secretHeaders } from './operations/index.js';

/** Names whose `name: value` / `"name":"value"` is a secret, besides the platforms' credential headers. */
const SECRET_NAMES = ['api[-_]?key', 'token', 'access_token', 'password', 'secret'];

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');

let patterns: { headers: string; list: readonly [RegExp, string][] } | undefined;

/** The token patterns for the platforms registered now (rebuilt only when that changes). */
function tokenPatterns(): readonly [RegExp, string][] {
  const headers = secretHeaders().map(escapeRegExp).join('|');
  if (patterns?.headers !== headers) {
    const names = [headers, ...SECRET_NAMES].filter((n) => n !== '').join('|');
    patterns = {
      headers,
      list: [
        [/(bearer\s+)[^\s"',;]+/gi, '$1[redacted]'],
        [new RegExp(`("?(?:${names})"?\\s*[:=]\\s*"?)[^\\s"',;}]+`, 'gi'), '$1[redacted]'],
      ],
    };
  }
  return patterns.list;
}

/**
 * Error text that goes into reports: cut to a bound, with the credential and anything shaped
 * like a token removed. Platform error bodies can echo headers back.
 */
export function scrubError(text: string, secrets: readonly string[], maxChars: number): string {
  let out = redactValues(text, secrets);
  for (const [re, rep] of tokenPatterns()) out = out.replace(re, rep);
  // The ellipsis counts: a stored error is never longer than `maxChars`.
  return out.length > maxChars ? `${out.slice(0, maxChars - 1)}…` : out;
}

/** `text` with every occurrence of each of `values` (of 4 characters or more) replaced by `[redacted]`. */
export function redactValues(text: string, values: readonly string[]): string {
  let out = text;
  for (const v of values) if (v.length >= 4) out = out.split(v).join('[redacted]');
  return out;
}
