/**
 * The Dockerfile's stages, read as text (no Docker engine): a slim Node LTS base, build and runtime
 * apart, production dependencies only at runtime, a non-root user, and a lean build context.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('Dockerfile', () => {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const stages: string[][] = [];
  for (const l of lines) {
    if (/^FROM\s/i.test(l)) stages.push([l]);
    else stages.at(-1)?.push(l);
  }
  const final = stages.at(-1) ?? [];
  const instr = (stage: string[], name: string) => stage.filter((l) => l.toUpperCase().startsWith(`${name} `));

  it('builds in one stage and runs from another, both on a slim Node LTS image', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) {
      const m = /^FROM\s+node:(\d+)[\w.]*-(?:bookworm|trixie)-slim\b/i.exec(stage[0]!);
      expect(m, stage[0]).not.toBeNull();
      // Even majors are Node's LTS lines; the project targets 20 (package.json engines).
      expect(Number(m![1]) % 2, stage[0]).toBe(0);
      expect(Number(m![1]), stage[0]).toBeGreaterThanOrEqual(20);
    }
    expect(stages.slice(0, -1).some((s) => instr(s, 'RUN').some((r) => r.includes('npm run build')))).toBe(true);
  });

  it('installs production dependencies only in the final stage and runs as a non-root user', () => {
    expect(instr(final, 'RUN').some((r) => /npm ci\b.*--omit=dev/.test(r))).toBe(true);
    expect(instr(final, 'COPY').some((c) => /--from=\w+.*\bdist\b/.test(c))).toBe(true);
    const users = instr(final, 'USER');
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^USER\s+(root|0)(:|\s|$)/i);
    // The user is set before the entrypoint runs, i.e. no later stage switches back.
    expect(final.indexOf(users.at(-1)!)).toBeLessThan(final.findIndex((l) => /^ENTRYPOINT\s/i.test(l)));
  });

  it('has a HEALTHCHECK and the CLI as its entrypoint', () => {
    expect(instr(final, 'HEALTHCHECK').join('')).toMatch(/CMD .*node.*fetch\(/);
    const entry = instr(final, 'ENTRYPOINT')[0];
    const bin = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.upshift;
    expect(entry).toBe(`ENTRYPOINT ["node", "${bin}"]`);
  });

  it('keeps node_modules, dist, .git, test artifacts and bench results out of the build context', () => {
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['node_modules', 'dist', '.git', 'test-artifacts']) expect(ignored).toContain(p);
    expect(ignored.some((l) => l.startsWith('bench/results'))).toBe(true);
  });
});
