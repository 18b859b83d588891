import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { luaCodes } from './codes.js';

/**
 * The include loader, after BullMQ's (src/commands/script-loader.ts there): a script names the
 * helpers it needs by `-- @include "name"` (a file `includes/<name>.lua` beside it), an include
 * names its own the same way, and what Redis runs is one text with each include pasted once.
 */

const INCLUDE = /^--\s*@include\s+"([\w-]+)"\s*$/gm;
const ANY_INCLUDE = /^--\s*@include\b.*$/gm;

export interface RenderedScript {
  readonly lua: string;
  /** Every include the script reached, directly or through another include. */
  readonly includes: ReadonlySet<string>;
}

/**
 * A script's Lua as Redis runs it: the codes table, then each include it reaches (from
 * `<dir>/includes/<name>.lua`, recursively) once, after the includes it needs, then the script.
 * A missing include, a cycle, or an include line of another form is an error, at load.
 */
export function renderScript(dir: string, file: string): RenderedScript {
  const done = new Map<string, string>();
  const chain: string[] = [];
  const directives = (text: string, where: string): string[] => {
    const bad = [...text.matchAll(ANY_INCLUDE)].find((m) => !new RegExp(INCLUDE.source).test(m[0]));
    if (bad) throw new Error(`${where}: malformed include line ${JSON.stringify(bad[0])} (expected -- @include "name")`);
    return [...text.matchAll(INCLUDE)].map((m) => m[1]!);
  };
  const visit = (name: string, from: string): void => {
    if (done.has(name)) return;
    if (chain.includes(name)) throw new Error(`${file}: include cycle ${[...chain.slice(chain.indexOf(name)), name].join(' -> ')}`);
    let text: string;
    try {
      text = readFileSync(join(dir, 'includes', `${name}.lua`), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${from}: include "${name}" not found in ${join(dir, 'includes')}`);
      throw err;
    }
    chain.push(name);
    for (const inc of directives(text, `includes/${name}.lua`)) visit(inc, `includes/${name}.lua`);
    chain.pop();
    done.set(name, text.replace(INCLUDE, ''));
  };
  const main = readFileSync(join(dir, file), 'utf8');
  for (const inc of directives(main, file)) visit(inc, file);
  return { lua: [luaCodes(), ...done.values(), main.replace(INCLUDE, '')].join('\n'), includes: new Set(done.keys()) };
}

