// tsc compiles TypeScript only; the Lua scripts and their includes/ sit beside their loader in
// dist as in src (the loader reads includes/<name>.lua at load, src/shared/scripts/index.ts).
import { cpSync, readdirSync, mkdirSync, rmSync } from 'node:fs';

const from = 'src/shared/scripts';
const to = 'dist/src/shared/scripts';
mkdirSync(to, { recursive: true });
for (const f of readdirSync(from)) if (f.endsWith('.lua')) cpSync(`${from}/${f}`, `${to}/${f}`);
// Replaced whole, so an include renamed or removed in src does not linger in dist.
rmSync(`${to}/includes`, { recursive: true, force: true });
cpSync(`${from}/includes`, `${to}/includes`, { recursive: true });

// The dashboard's static shell (HTML, vanilla JS, CSS; no build step) beside the API that serves it.
cpSync('src/producer/api/dashboard', 'dist/src/producer/api/dashboard', { recursive: true });
