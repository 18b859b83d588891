import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PAUSE_REASONS, REASONS } from '../../src/shared/index.js';

const doc = readFileSync(new URL('../../docs/REASONS.md', import.meta.url), 'utf8');

/** Every TypeScript and Lua source under src/ but the catalogue itself: where codes are produced. */
function producerTexts(): string[] {
  const src = fileURLToPath(new URL('../../src/', import.meta.url));
  return readdirSync(src, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|lua)$/.test(f) && join(src, f) !== join(src, 'shared', 'reasons.ts'))
    .map((f) => readFileSync(join(src, f), 'utf8'));
}

describe('reason catalogue', () => {
  const codes = Object.keys(REASONS);

  it('has unique, upper-snake-case codes', () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^[A-Z][A-Z0-9_]*$/);
  });

  it('documents every code in docs/REASONS.md with its outcome and description', () => {
    for (const [code, info] of Object.entries(REASONS)) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
      expect(row, `docs/REASONS.md has no row for ${code}`).toBeDefined();
      expect(row).toContain(info.outcome ?? 'retried');
      expect(row).toContain(info.description);
    }
  });

  it('documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \| (?:upgraded|skipped|failed|retried) \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...codes].sort());
  });

  // A documented code that nothing raises is a promise the reports never keep.
  it('has every code produced somewhere: named as a literal in a source file other than the catalogue', () => {
    const texts = producerTexts();
    const unproduced = [...codes, ...Object.keys(PAUSE_REASONS)].filter(
      (code) => !texts.some((text) => new RegExp(`['"\`]${code}['"\`]`).test(text)),
    );
    expect(unproduced, 'codes no source file outside src/shared/reasons.ts names').toEqual([]);
  });

  it('marks transient codes retryable and outcome codes not', () => {
    for (const info of Object.values(REASONS)) expect(info.retryable).toBe(info.outcome === null);
  });

  it('documents every pause reason, and no other', () => {
    for (const [code, description] of Object.entries(PAUSE_REASONS)) {
      expect(doc).toContain(`| \`${code}\` | ${description} |`);
    }
    const section = doc.slice(doc.indexOf('## Pause reasons'));
    const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(PAUSE_REASONS).sort());
    const overlap = Object.keys(PAUSE_REASONS).filter((c) => c in REASONS);
    expect(overlap).toEqual([]);
  });
});
