import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/shared/config.js';
import { CODES } from '../../src/shared/scripts/codes.js';
import { renderScript } from '../../src/shared/scripts/loader.js';

/** The Lua sources and the one return-code table both sides read (src/shared/scripts/codes.ts). */
const dir = join(import.meta.dirname, '../../src/shared/scripts');
const scripts = readdirSync(dir).filter((f) => f.endsWith('.lua'));
const includes = readdirSync(join(dir, 'includes')).filter((f) => f.endsWith('.lua'));
const lua = new Map<string, string>([
  ...scripts.map((f) => [f, readFileSync(join(dir, f), 'utf8')] as const),
  ...includes.map((f) => [`includes/${f}`, readFileSync(join(dir, 'includes', f), 'utf8')] as const),
]);
const used = (text: string, table: string) => [...text.matchAll(new RegExp(`\\b${table}\\.(\\w+)`, 'g'))].map((m) => m[1]!);
/** The code outside the opening `--[[ ... ]]` header. */
const code = (text: string) => text.replace(/^--\[\[[\s\S]*?\]\]/, '');

describe('script return codes', () => {
  it('gives every code its own number', () => {
    const values = Object.values(CODES);
    expect(new Set(values).size).toBe(values.length);
  });

  it('knows every CODES.X a script or include uses', () => {
    for (const [file, text] of lua) {
      for (const name of used(text, 'CODES')) expect(CODES, `${file} uses CODES.${name}`).toHaveProperty(name);
    }
  });

  it('has no script return a bare negative number', () => {
    for (const [file, text] of lua) {
      expect(code(text), file).not.toMatch(/\breturn\s*\{?\s*-\s*\d/);
    }
  });

  it('has every code in the table used by some script', () => {
    const all = new Set([...lua.values()].flatMap((text) => used(code(text), 'CODES')));
    expect(Object.keys(CODES).filter((name) => !all.has(name))).toEqual([]);
  });

  it("names, in each script's header, every code the script returns itself", () => {
    for (const f of scripts) {
      const text = lua.get(f)!;
      const header = text.slice(0, text.length - code(text).length);
      for (const name of used(code(text), 'CODES')) expect(header, `${f}: ${name}`).toMatch(new RegExp(`\\b${name}\\b`));
    }
  });

  it('reads every loop cap an include uses from DEFAULTS', () => {
    for (const [file, text] of lua) {
      for (const name of used(text, 'CAPS')) expect(DEFAULTS, `${file} uses CAPS.${name}`).toHaveProperty(name);
    }
  });
});

describe('script includes', () => {
  it("declare in their header the includes they pull in", () => {
    for (const f of includes) {
      const text = lua.get(`includes/${f}`)!;
      const needs = /Needs: ([\w, ]+)\./.exec(text)?.[1]?.split(', ') ?? [];
      const pulled = [...text.matchAll(/^-- @include "(\w+)"$/gm)].map((m) => m[1]);
      expect(pulled, f).toEqual(needs);
      expect(text, f).toMatch(/Provides: /);
    }
  });

  it('render every script whole: no include line left, the codes table first', () => {
    for (const f of scripts) {
      const { lua: out } = renderScript(dir, f);
      expect(out, f).not.toMatch(/@include/);
      expect(out.startsWith('local CODES = {'), f).toBe(true);
    }
  });

  describe('loader', () => {
    let tmp: string;
    const write = (files: Record<string, string>) => {
      tmp = mkdtempSync(join(tmpdir(), 'lua-'));
      mkdirSync(join(tmp, 'includes'));
      for (const [name, text] of Object.entries(files)) writeFileSync(join(tmp, name), text);
    };
    afterEach(() => rmSync(tmp, { recursive: true, force: true }));

    it('resolves includes recursively, each once, after what it needs', () => {
      write({
        'main-1.lua': '-- @include "b"\n-- @include "c"\nreturn b() + c()\n',
        'includes/b.lua': '-- @include "d"\nlocal function b() return d() end\n',
        'includes/c.lua': '-- @include "d"\nlocal function c() return d() end\n',
        'includes/d.lua': 'local function d() return 1 end\n',
      });
      const { lua: out, includes: reached } = renderScript(tmp, 'main-1.lua');
      expect([...reached]).toEqual(['d', 'b', 'c']);
      expect(out.match(/local function d/g)).toHaveLength(1);
      expect(out.indexOf('function d')).toBeLessThan(out.indexOf('function b'));
      expect(out.indexOf('function c')).toBeLessThan(out.indexOf('return b() + c()'));
    });

    it('fails on a missing include, naming it and who asked', () => {
      write({ 'main-1.lua': '-- @include "a"\n', 'includes/a.lua': '-- @include "nope"\n' });
      expect(() => renderScript(tmp, 'main-1.lua')).toThrow(/includes\/a\.lua: include "nope" not found/);
    });

    it('fails on a cycle, naming it', () => {
      write({
        'main-1.lua': '-- @include "a"\n',
        'includes/a.lua': '-- @include "b"\n',
        'includes/b.lua': '-- @include "a"\n',
      });
      expect(() => renderScript(tmp, 'main-1.lua')).toThrow(/include cycle a -> b -> a/);
    });

    it('fails on an include line of another form', () => {
      write({ 'main-1.lua': '-- @include _scheduler.lua\n' });
      expect(() => renderScript(tmp, 'main-1.lua')).toThrow(/malformed include line/);
    });
  });
});
