/**
 * Error text that goes into reports: cut to a bound, with the credential and anything shaped
 * like a token removed. Platform error bodies can echo headers back.
 */
const TOKEN_PATTERNS: readonly [RegExp, string][] = [
  [/(bearer\s+)[^\s"',;]+/gi, '$1[redacted]'],
  [/("?(?:x-authorization|authorization|nected-api-key|api[-_]?key|token|access_token|password|secret)"?\s*[:=]\s*"?)[^\s"',;}]+/gi, '$1[redacted]'],
];

export function scrubError(text: string, secrets: readonly string[], maxChars: number): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('[redacted]');
  for (const [re, rep] of TOKEN_PATTERNS) out = out.replace(re, rep);
  // The ellipsis counts: a stored error is never longer than `maxChars`.
  return out.length > maxChars ? `${out.slice(0, maxChars - 1)}…` : out;
}
