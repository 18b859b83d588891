// tsc compiles TypeScript only; the Lua scripts sit beside their loader in dist as in src.
import { cpSync, readdirSync, mkdirSync } from 'node:fs';

const from = 'src/shared/scripts';
const to = 'dist/src/shared/scripts';
mkdirSync(to, { recursive: true });
for (const f of readdirSync(from)) if (f.endsWith('.lua')) cpSync(`${from}/${f}`, `${to}/${f}`);

// The dashboard's static shell (HTML, vanilla JS, CSS; no build step) beside the API that serves it.
cpSync('src/producer/api/dashboard', 'dist/src/producer/api/dashboard', { recursive: true });
