import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { beforeEach, describe, expect, it } from 'vitest';
import { watchCampaign } from '../../src/cli/watch.js';
import { enqueueCampaign, pauseCampaign, resumeCampaign } from '../../src/producer/index.js';
import { readStatus } from '../../src/shared/index.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet } from '../support/fleet.js';
import { deletePrefix, redisUrl } from '../support/harness.js';

const cli = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

/** `upshift status <id> --watch` from the build, stdout a pipe (not a TTY), read line by line. */
interface Watcher {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly lines: string[];
  /** Raw stdout, to check for escape codes that line splitting could hide. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first line (seen so far or later) that `match` accepts; `index` is 0-based. */
  line(match: (line: string, index: number) => boolean): Promise<string>;
  readonly exited: Promise<number | null>;
}

function watch(args: string[], env: Record<string, string>): Watcher {
  const proc = spawn(process.execPath, [cli, 'status', ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  proc.stdin.end();
  const lines: string[] = [];
  let out = '';
  let err = '';
  let partial = '';
  const waiters: { match: (l: string, index: number) => boolean; resolve: (l: string) => void }[] = [];
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const w of [...waiters]) {
        if (w.match(l, lines.length - 1)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    }
  });
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(proc, 'close').then(([code]) => code as number | null);
  return {
    proc,
    lines,
    stdout: () => out,
    stderr: () => err,
    exited,
    line: (match) => {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ match, resolve });
        exited.then((code) => reject(new Error(`watch exited (${code}) before the line came; stdout:\n${out}\nstderr:\n${err}`)));
      });
    },
  };
}

/** A plain status line, parsed: `<id> <state> <done>/<total> <pct>% key=value ...`. */
interface PlainLine {
  state: string;
  done: number;
  total: number;
  fields: Record<string, string>;
}

const PLAIN = /^(\S+) (\S+) (\d+)\/(\d+) (\d+)% (.*)$/;

function parse(line: string): PlainLine {
  const m = PLAIN.exec(line);
  if (!m) throw new Error(`not a plain status line: ${JSON.stringify(line)}`);
  const fields = Object.fromEntries(m[6]!.split(' ').map((kv) => kv.split('=') as [string, string]));
  return { state: m[2]!, done: Number(m[3]), total: Number(m[4]), fields };
}

describe('upshift status --watch', () => {
  // Latency keeps the campaign running long enough for several readings.
  const t = setupDeployment({ sandbox: { latencyMs: 20 }, credentials: true });
  let env: Record<string, string>;

  beforeEach(() => {
    env = { REDIS_URL: redisUrl(), UPSHIFT_PREFIX: t.prefix, LOG_LEVEL: 'warn' };
  });

  const killAtEnd = (w: Watcher) =>
    t.defer(async () => {
      if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
      await w.exited;
    });
  const start = (args: string[]) => {
    const w = watch(args, env);
    killAtEnd(w);
    return w;
  };
  const work = async () => {
    await t.startWorker({ concurrency: 2 });
  };
  const enqueue = async (id: string, n: number) => {
    const fleet = alloyFleet(n);
    t.sandbox.load(fleet.fixtures);
    await enqueueCampaign(
      {
        id,
        connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 5000 },
        operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
      },
      fleet.targets,
      t.producer,
    );
  };

  it('prints plain lines with non-decreasing counts while the campaign runs, and exits 0 when it completes', async () => {
    await enqueue('watched', 60);
    const w = start(['watched', '--watch', '--interval-ms', '100']);
    // The first reading is taken before any worker runs, so the campaign is seen from 0 to the end.
    await w.line((l) => l.startsWith('watched running 0/60 '));
    await work();
    expect(await w.exited).toBe(0);

    expect(w.stdout()).not.toMatch(/\u001b/);
    const summary = w.lines.at(-1)!;
    expect(summary).toMatch(/^campaign watched completed in \S+: upgraded 60, skipped 0, failed 0$/);
    const parsed = w.lines.slice(0, -1).map(parse);
    expect(parsed.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < parsed.length; i++) {
      const [a, b] = [parsed[i - 1]!, parsed[i]!];
      expect(b.done, `line ${i + 1} after line ${i}`).toBeGreaterThanOrEqual(a.done);
      expect(Number(b.fields.upgraded)).toBeGreaterThanOrEqual(Number(a.fields.upgraded));
    }
    for (const p of parsed) {
      expect(p.total).toBe(60);
      expect(Number(p.fields.upgraded) + Number(p.fields.pending) + Number(p.fields.active)).toBe(60);
      expect(p.fields.rate).toMatch(/^(\?|\d+(\.\d)?)\/s$/);
    }
    expect(parsed.at(-1)).toMatchObject({ state: 'completed', done: 60, fields: { upgraded: '60', pending: '0', active: '0', eta: '0s' } });
  });

  it('wakes on the campaign events: pause and resume show without waiting for the interval', async () => {
    await enqueue('evented', 20);
    // An interval of 10 minutes: every line after the first can only come from an event.
    const w = start(['evented', '--watch', '--interval-ms', '600000']);
    await w.line((l) => l.startsWith('evented running 0/20 '));
    await pauseCampaign('evented', { redis: t.redis, prefix: t.prefix });
    expect(await w.line((l) => l.startsWith('evented paused '))).toMatch(/ paused=OPERATOR$/);
    await resumeCampaign('evented', { redis: t.redis, prefix: t.prefix });
    await w.line((l, i) => i > 1 && l.startsWith('evented running '));
    await work();
    expect(await w.exited).toBe(0);
    expect(w.lines.slice(0, -1).map((l) => parse(l).state)).toEqual(['running', 'paused', 'running', 'completed']);
    expect(parse(w.lines.at(-2)!)).toMatchObject({ done: 20, total: 20 });
  });

  it('stops watching on Ctrl-C with exit 0 and leaves the campaign running', async () => {
    await enqueue('interrupted', 5);
    const w = start(['interrupted', '--watch', '--interval-ms', '100']);
    await w.line((l) => l.startsWith('interrupted running 0/5 '));
    w.proc.kill('SIGINT');
    expect(await w.exited).toBe(0);
    expect(w.stderr()).toBe('');
    expect((await readStatus(t.redis, t.prefix, 'interrupted'))?.state).toBe('running');
  });

  it('exits 2 for an unknown campaign or a flag without --watch, naming the fix', async () => {
    const unknown = start(['nope', '--watch']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.stderr().trim()).toBe(`upshift status: arguments: no campaign "nope" under prefix "${t.prefix}"; list campaigns with "upshift list" or set UPSHIFT_PREFIX`);
    expect(unknown.stdout()).toBe('');

    const stray = start(['nope', '--interval-ms', '500']);
    expect(await stray.exited).toBe(2);
    expect(stray.stderr().trim()).toBe('upshift status: arguments, field "--interval-ms": only applies to --watch; add --watch');
    const tooFast = start(['nope', '--watch', '--interval-ms', '5']);
    expect(await tooFast.exited).toBe(2);
    expect(tooFast.stderr()).toContain('field "--interval-ms": must be an integer >= 100');
  });

  it('ends with one line and exit 1 when the campaign vanishes; the stack only with LOG_LEVEL=debug', async () => {
    for (const level of ['warn', 'debug']) {
      await enqueue('vanishing', 5);
      const w = watch(['vanishing', '--watch', '--interval-ms', '100'], { ...env, LOG_LEVEL: level });
      killAtEnd(w);
      await w.line((l) => l.startsWith('vanishing running 0/5 '));
      await deletePrefix(t.redis, t.prefix);
      expect(await w.exited).toBe(1);
      const [first, ...rest] = w.stderr().trimEnd().split('\n');
      expect(first).toBe(
        'upshift status: campaign "vanishing" disappeared from Redis while watched (deleted or expired) (unexpected error; run with LOG_LEVEL=debug for details)',
      );
      if (level === 'debug') expect(rest.join('\n')).toMatch(/^Error: campaign "vanishing" disappeared[^]*\n\s+at /);
      else expect(rest).toEqual([]);
    }
  });

  it('redraws a frame in place on a terminal, and restores the cursor at the end', async () => {
    await enqueue('framed', 30);
    let out = '';
    let firstFrame: () => void;
    const drawn = new Promise<void>((resolve) => (firstFrame = resolve));
    const terminal = {
      isTTY: true,
      columns: 100,
      write(chunk: string) {
        out += chunk;
        if (out.includes('framed · running')) firstFrame();
        return true;
      },
    };
    const watching = watchCampaign({ redis: t.redis, prefix: t.prefix, id: 'framed', intervalMs: 50, out: terminal, color: true });
    await drawn;
    await work();
    const final = await watching;

    expect(final).toMatchObject({ state: 'completed', upgraded: 30 });
    expect(out.startsWith('\u001b[?25l')).toBe(true);
    expect(out.endsWith('\u001b[?25h')).toBe(true);
    // Every frame after the first moves up over the one before (3 lines: no reasons, no note).
    const redraws = out.split('\u001b[3F\u001b[0J').length - 1;
    expect(redraws).toBeGreaterThanOrEqual(1);
    const lastFrame = out.slice(out.lastIndexOf('\u001b[0J') + '\u001b[0J'.length);
    expect(lastFrame).toContain('framed · completed · alloy.upgradeWorkflow');
    expect(lastFrame).toContain('30/30  100%');
    expect(lastFrame).toContain('upgraded 30  skipped 0  failed 0  · pending 0  active 0');
    expect(lastFrame).toMatch(/campaign framed completed in \S+: upgraded 30, skipped 0, failed 0\n/);
  });
});
