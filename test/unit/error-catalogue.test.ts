import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ERRORS, EXIT, REASONS, type ErrorCode } from '../../src/shared/index.js';

const doc = readFileSync(new URL('../../docs/ERRORS.md', import.meta.url), 'utf8');
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** docs/ERRORS.md's table rows: `| \`CODE\` | status | \`error\` | exit | yes/no | when |`. */
const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \| `([a-z_]+)` \| (\d) \| (yes|no) \|/gm)].map((m) => ({
  code: m[1]!,
  httpStatus: Number(m[2]),
  api: m[3]!,
  exitCode: Number(m[4]),
  retryable: m[5] === 'yes',
}));

describe("catalogue of Upshift's own errors", () => {
  const codes = Object.keys(ERRORS) as ErrorCode[];

  it('has unique, upper-snake-case codes; a platform reason code only where it means the same', () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^[A-Z][A-Z0-9_]*$/);
    // The producer refuses an unregistered connection at enqueue; a worker re-checks and records
    // the same refusal as a target's reason. Any other shared name would mean two things.
    expect(codes.filter((c) => c in REASONS)).toEqual(['CONNECTION_NOT_REGISTERED']);
  });

  it('gives every row an HTTP error status, a CLI exit code for an error and a message', () => {
    for (const code of codes) {
      const row = ERRORS[code];
      expect(row.httpStatus >= 400 && row.httpStatus <= 599 && STATUS_CODES[row.httpStatus] !== undefined, code).toBe(true);
      expect([EXIT.failure, EXIT.input], code).toContain(row.exitCode);
      expect(row.message.length, code).toBeGreaterThan(0);
    }
  });

  it('documents every code in docs/ERRORS.md with its row, and documents no other', () => {
    for (const code of codes) {
      const { httpStatus, api, exitCode, retryable } = ERRORS[code];
      expect(documented.find((d) => d.code === code), `docs/ERRORS.md has no row for ${code}`).toEqual({ code, httpStatus, api, exitCode, retryable });
    }
    expect(documented.map((d) => d.code).sort()).toEqual([...codes].sort());
  });

  it('is linked from the README', () => {
    expect(readme).toContain('(docs/ERRORS.md)');
  });
});
