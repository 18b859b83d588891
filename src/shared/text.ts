/**
 * C0 and C1 control characters and DEL: what a terminal may obey instead of printing (ESC and
 * CSI start escape sequences; CR and LF rewrite or forge lines).
 */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL_CHARS_ALL = /[\u0000-\u001f\u007f-\u009f]/g;

export function hasControlChars(s: string): boolean {
  return CONTROL_CHARS.test(s);
}

/**
 * Text fit for a terminal: every control character written as `\uXXXX`, so text from Redis or
 * from a platform (a campaign name, an error message) is shown, never obeyed.
 */
export function escapeControlChars(s: string): string {
  return s.replace(CONTROL_CHARS_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * JSON for a terminal: `JSON.stringify` escapes C0 but writes DEL and C1 (U+0080–U+009F, CSI
 * among them) raw; these are escaped too. The same JSON value, so programs read the same data.
 */
export function jsonForTerminal(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
