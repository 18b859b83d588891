import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PAUSE_REASONS, REASONS } from '../../src/shared/index.js';

const doc = readFileSync(new URL('../../docs/REASONS.md', import.meta.url), 'utf8');

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
