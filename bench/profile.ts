/**
 * Sums up a V8 CPU profile (`node --cpu-prof`): self time by where the code lives (Upshift,
 * bullmq, ioredis, undici, other packages, Node internals, GC, idle) and the busiest functions.
 *
 *   BENCH_ONLY=throughput BENCH_ROUNDS=1 BENCH_CPU_PROF=/tmp/prof npm run bench
 *   node dist/bench/profile.js /tmp/prof/upshift-0.cpuprofile [targets]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'program (native, unattributed)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return ['bullmq', 'ioredis', 'undici', 'msgpackr', 'pino'].includes(pkg[1]!) ? pkg[1]! : `other package (${pkg[1]})`;
  if (url.includes('/dist/src/')) return `upshift ${/dist\/src\/([^/]+)/.exec(url)![1]}`;
  if (url.startsWith('node:') || url === '') return 'node internals';
  return 'other';
}

const [file, targetsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node dist/bench/profile.js <file.cpuprofile> [targets]');
  process.exit(2);
}
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));

const areas = new Map<string, number>();
const fns = new Map<string, number>();
let total = 0;
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const a = area(url, functionName);
  areas.set(a, (areas.get(a) ?? 0) + us);
  if (a !== 'idle') {
    total += us;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
}
const targets = Number(targetsArg ?? 0);
const ms = (us: number) => (us / 1000).toFixed(0);
console.log(`profile ${file}: ${ms(p.endTime - p.startTime)} ms wall, ${ms(total)} ms on CPU (not idle)`);
if (targets > 0) console.log(`CPU per target: ${(total / targets).toFixed(1)} µs over ${targets} targets`);
console.log('\nself time by area:');
for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1])) {
  console.log(`  ${a.padEnd(34)} ${ms(us).padStart(7)} ms  ${a === 'idle' ? '' : `${((us / total) * 100).toFixed(1)}%`}`);
}
console.log('\nbusiest functions (self time):');
for (const [f, us] of [...fns].sort((x, y) => y[1] - x[1]).slice(0, 25)) {
  console.log(`  ${ms(us).padStart(6)} ms  ${((us / total) * 100).toFixed(1).padStart(5)}%  ${f}`);
}
