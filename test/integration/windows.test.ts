import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { enqueueCampaign } from '../../src/producer/index.js';
import { buildApi } from '../../src/producer/api/index.js';
import { campaignKeys, createLogger, DEFAULTS, eventsChannel, InputError, loadScripts, readStatus, redisTimeMs, TARGET_QUEUE, type CampaignStatus, type Logger, type Scripts, type TargetJobData } from '../../src/shared/index.js';
import { Dispatcher } from '../../src/worker/dispatcher.js';
import { refreshWindows } from '../../src/shared/window-store.js';
import { renderScript } from '../../src/shared/scripts/loader.js';
import { openInterval, type Window } from '../../src/shared/windows.js';
import { setupDeployment } from '../support/deployment.js';
import { runCli } from '../support/fleet.js';
import { keysUnder, redisUrl, until } from '../support/harness.js';

const OFFSET_ENV = 'UPSHIFT_WINDOW_CLOCK_OFFSET_MS';
const scriptsDir = fileURLToPath(new URL('../../src/shared/scripts/', import.meta.url));
const sha = (file: string): string => createHash('sha1').update(renderScript(scriptsDir, file).lua).digest('hex');

interface Run {
  readonly runId: string;
  readonly tz: string;
}

describe('maintenance windows', () => {
  const t = setupDeployment({ sandbox: { record: true, latencyMs: 5 }, credentials: true });
  afterEach(() => {
    delete process.env[OFFSET_ENV];
  });

  const spec = (id: string, schedule: unknown, limits: unknown[] = [{ key: 'tz-${target.tz}', concurrency: 2 }]) => ({
    id,
    connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_TALLYFY_KEY', timeoutMs: 5000 },
    operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'new' } },
    limits,
    schedule,
  });

  const load = (fleet: readonly Run[]): void =>
    t.sandbox.load({ tallyfy: { runs: fleet.map((r) => ({ orgId: 'org', id: r.runId, name: 'old', summary: '', tags: [], folders: [] })) } });

  /**
   * Sets the window clock so that, by it, `at` is `leadMs` after now: every process of the test
   * (this one's producer and in-process workers) reads the offset when it loads the scripts.
   */
  async function clockAt(at: number, leadMs: number): Promise<number> {
    const offset = at - leadMs - redisTimeMs(await t.redis.time());
    process.env[OFFSET_ENV] = String(offset);
    return offset;
  }

  /** The first request of each run, on the window clock. */
  const firstSeen = (offset: number): Map<string, number> => {
    const seen = new Map<string, number>();
    for (const r of t.sandbox.received!) {
      const id = /\/runs\/([^/?]+)/.exec(r.path)?.[1];
      if (id !== undefined && !seen.has(id)) seen.set(id, r.at + offset);
    }
    return seen;
  };

  /**
   * Counts this deployment's dispatch and renew script calls as Redis receives them: MONITOR on
   * a plain socket (ioredis's monitor mode can lose track of its replies when the server is busy
   * with other test files at the moment it starts). Each reply is one `+<time> [...] "cmd" ...` line.
   */
  async function countCalls(): Promise<{ dispatch: number; renew: number; error?: string }> {
    const { hostname, port } = new URL(redisUrl());
    const calls: { dispatch: number; renew: number; error?: string } = { dispatch: 0, renew: 0 };
    // Its handler is on before the socket connects: an error is kept for the test to assert on,
    // never an unhandled one.
    const socket = connect({ port: Number(port), host: hostname }).on('error', (err) => (calls.error ??= err.message));
    t.defer(() => socket.destroy());
    await once(socket, 'connect');
    const dispatch = `"evalsha" "${sha('dispatch-1.lua')}" "1" "${t.prefix}:sched:ring" "${t.prefix}" `;
    const renew = `"evalsha" "${sha('renew-1.lua')}" "1" "${t.prefix}:sched:ring" "${t.prefix}" `;
    let buffered = '';
    let started!: () => void;
    const ok = new Promise<void>((resolve) => (started = resolve));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\r\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        if (line === '+OK') started();
        else if (line.includes(dispatch)) calls.dispatch++;
        else if (line.includes(renew)) calls.renew++;
      }
    });
    socket.write('MONITOR\r\n');
    await ok;
    return calls;
  }

  /** Keys of the test's prefix, BullMQ's queue meta aside (the API's queue writes it on start). */
  const leftBehind = async (): Promise<string[]> => (await keysUnder(t.redis, t.prefix)).filter((k) => !k.startsWith(`${t.prefix}:targets:`));

  const status = async (id: string): Promise<CampaignStatus> => (await readStatus(t.redis, t.prefix, id))!;

  it('starts each tenant only inside its own window (one open, one opening at the spring-forward gap, one days away); nothing polls while they wait', async () => {
    // By the window clock it is Sunday 8 March 2026, 06:59:54Z: New York is at 01:59:54 EST, 6 s
    // before its clocks jump to 03:00 EDT, and its window from 02:30 opens at the jump. Kolkata
    // (12:29:54) is inside its 12:00-13:00; Kiritimati (+14, 20:59:54) has passed both Sunday
    // windows, so its next opens a week later.
    const windows: Window[] = [
      { days: ['sun'], from: '02:30', to: '03:30' },
      { days: ['sun'], from: '12:00', to: '13:00' },
    ];
    const jump = Date.parse('2026-03-08T07:00:00Z');
    // The producer computes the intervals a minute before the jump (the same ones as 6 s before).
    await clockAt(jump, 60_000);
    const zones = { a: 'Asia/Kolkata', b: 'America/New_York', c: 'Pacific/Kiritimati' } as const;
    const fleet: Run[] = (['a', 'b', 'c'] as const).flatMap((z) => [1, 2, 3].map((n) => ({ runId: `${z}${n}`, tz: zones[z] })));
    load(fleet);
    const calls = await countCalls();
    await enqueueCampaign(spec('zones', { timezone: '${target.tz}', windows }), fleet, t.producer);
    // The worker's clock is set right before it starts, so a slow setup does not eat the lead.
    const offset = await clockAt(jump, 6000);
    await t.startWorker({ concurrency: 4, leaseMs: 1500 });

    // Kolkata's run at once; New York's wait for the jump.
    await until(() => status('zones'), (s) => s.upgraded === 3, 'Kolkata upgraded');
    const before = await status('zones');
    expect(before).toMatchObject({ upgraded: 3, waitingForWindow: 6, nextWindowAt: jump });
    await until(() => status('zones'), (s) => s.upgraded === 6 && s.active === 0, 'New York upgraded');
    expect(calls.dispatch).toBeGreaterThanOrEqual(1);

    const seen = firstSeen(offset);
    for (const run of fleet) {
      const window = openInterval(windows, run.tz, jump - 6000);
      if (run.tz === zones.c) {
        expect(seen.has(run.runId), run.runId).toBe(false);
        continue;
      }
      expect(seen.get(run.runId), run.runId).toBeGreaterThanOrEqual(window.from);
      expect(seen.get(run.runId), run.runId).toBeLessThan(window.until);
    }
    expect(seen.get('b1')! - offset).toBeGreaterThan(0);
    const kiritimati = openInterval(windows, zones.c, jump);
    expect(new Date(kiritimati.from).toISOString()).toBe('2026-03-14T12:30:00.000Z');
    const waiting = await status('zones');
    expect(waiting).toMatchObject({ state: 'running', upgraded: 6, pending: 3, active: 0, waitingForWindow: 3, nextWindowAt: kiritimati.from });

    // Only Kiritimati waits, for days: while the worker renews its registration six times, no
    // dispatch step is due (its one timer is set for the opening). Renewals trigger none; one
    // failed step's retry at most may land here, where a dispatcher that polled would run at
    // least one per renewal.
    const dispatchNow = calls.dispatch;
    const renewNow = calls.renew;
    await until(async () => calls.renew, (n) => n >= renewNow + 6, 'six renewals');
    expect(calls.dispatch - dispatchNow).toBeLessThanOrEqual(2);
    expect(calls.error).toBeUndefined();
    // The group waits in the scheduler's delayed set, scored at the opening on Redis's clock.
    expect(Number(await t.redis.zscore(`${t.prefix}:sched:delayed`, 'zones|2'))).toBe(kiritimati.from - offset);

    const cli = await runCli(['status', 'zones'], { ...t.env(), [OFFSET_ENV]: String(offset) });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('waiting for a maintenance window: 3 targets; next window opens 2026-03-14T12:30:00.000Z');
  });

  it('a window closing mid-run stops new starts; the run in flight finishes', async () => {
    // Kathmandu (+05:45), Monday 9 March 2026: the window 09:00-10:00 closes at 04:15Z, 2 s after
    // now by the window clock. One run at a time, 300 ms each: most of the twelve never start.
    const windows: Window[] = [{ days: ['mon'], from: '09:00', to: '10:00' }];
    const close = Date.parse('2026-03-09T04:15:00Z');
    // The producer's clock a minute before the close (the same interval), the worker's set 2 s
    // before it right before it starts, so a slow setup does not eat the lead.
    await clockAt(close, 60_000);
    t.sandbox.configure({ latencyMs: 300 });
    const fleet: Run[] = Array.from({ length: 12 }, (_, i) => ({ runId: `k${String(i).padStart(2, '0')}`, tz: 'Asia/Kathmandu' }));
    load(fleet);
    await enqueueCampaign(spec('closing', { timezone: 'Asia/Kathmandu', windows }), fleet, t.producer);
    const offset = await clockAt(close, 2000);
    await t.startWorker({ concurrency: 1 });

    const next = openInterval(windows, 'Asia/Kathmandu', close);
    expect(new Date(next.from).toISOString()).toBe('2026-03-16T03:15:00.000Z');
    const s = await until(() => status('closing'), (v) => v.active === 0 && (v.waitingForWindow ?? 0) > 0, 'parked after the close');
    expect(s.upgraded).toBeGreaterThan(0);
    expect(s.upgraded).toBeLessThan(12);
    expect(s).toMatchObject({ state: 'running', pending: 12 - s.upgraded, waitingForWindow: 12 - s.upgraded, nextWindowAt: next.from });
    // Every run that started finished (none left active), and at most the one in flight at the
    // close reached the platform after it.
    const seen = firstSeen(offset);
    expect(seen.size).toBe(s.upgraded);
    expect([...seen.values()].filter((at) => at >= close).length).toBeLessThanOrEqual(1);
    expect(await t.redis.hget(campaignKeys(t.prefix, 'closing').win, 'Asia/Kathmandu')).toBe(`${next.from}|${next.until}`);
  });

  it('refuses a bad zone, a missing or bad ${target.tz}, a bad day or time, naming line and field, leaving nothing behind', async () => {
    const windows = [{ days: ['sat'], from: '00:00', to: '24:00' }];
    const refused = async (schedule: unknown, targets: unknown[]): Promise<InputError> => {
      const err = await enqueueCampaign(spec('refused', schedule, []), targets, t.producer).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect(await leftBehind()).toEqual([]);
      return err as InputError;
    };
    const runs = [{ runId: 'r1', tz: 'Europe/Berlin' }, { runId: 'r2' }, { runId: 'r3', tz: 'Europe/Atlantis' }];
    expect(await refused({ timezone: 'Mars/Olympus', windows }, runs.slice(0, 1))).toMatchObject({ field: 'schedule.timezone' });
    expect(await refused({ timezone: '${target.tz}', windows }, runs)).toMatchObject({ line: 2, field: 'tz', source: 'targets' });
    expect(await refused({ timezone: '${target.tz}', windows }, [runs[0], runs[2]])).toMatchObject({ line: 2, field: 'tz', message: expect.stringContaining('"Europe/Atlantis" is not an IANA time zone') });
    expect(await refused({ timezone: 'UTC', windows: [{ days: ['sat', 'caturday'], from: '00:00', to: '24:00' }] }, runs.slice(0, 1))).toMatchObject({ field: 'schedule.windows[0].days[1]' });
    expect(await refused({ timezone: 'UTC', windows: [{ days: ['sat'], from: '25:00', to: '24:00' }] }, runs.slice(0, 1))).toMatchObject({ field: 'schedule.windows[0].from' });

    // The API: 400 with the field and line.
    const app = await buildApi({ redis: t.redis, prefix: t.prefix, log: createLogger('silent'), apiToken: 'tok-0123456789abcdef', connections: t.connections });
    t.defer(() => app.close());
    const post = (payload: object) => app.inject({ method: 'POST', url: '/campaigns', headers: { authorization: 'Bearer tok-0123456789abcdef' }, payload });
    const zone = await post({ ...spec('refused', { timezone: 'Europe/Atlantis', windows }, []), targets: runs.slice(0, 1) });
    expect(zone.statusCode).toBe(400);
    expect(zone.json()).toMatchObject({ error: 'invalid_input', field: 'schedule.timezone' });
    const line = await post({ ...spec('refused', { timezone: '${target.tz}', windows }, []), targets: runs });
    expect(line.statusCode).toBe(400);
    expect(line.json()).toMatchObject({ error: 'invalid_input', field: 'tz', line: 2 });
    // BullMQ's queue meta is the API's; nothing of the campaign is there.
    expect(await leftBehind()).toEqual([]);

    // The CLI: exit 2 naming the spec's field (a spec's schema errors name the field, its JSON
    // syntax errors the line), and the targets file's line and field.
    const dir = t.tempDir('windows-cli-');
    const specFile = join(dir, 'spec.json');
    const bad = spec('refused', { timezone: 'UTC', windows: [{ days: ['sat'], from: '00:00', to: '24:61' }] }, []);
    writeFileSync(specFile, JSON.stringify(bad, null, 2));
    const targets = join(dir, 'targets.ndjson');
    writeFileSync(targets, '{"runId":"r1","tz":"Europe/Berlin"}\n{"runId":"r2"}\n');
    const cli = await runCli(['enqueue', specFile, '--targets', targets], t.env());
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain(`${specFile}, field "schedule.windows[0].to": a time "HH:MM" from 00:00 to 24:00`);
    writeFileSync(specFile, JSON.stringify({ ...bad, schedule: { timezone: '${target.tz}', windows } }, null, 2));
    const missing = await runCli(['enqueue', specFile, '--targets', targets], t.env());
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${targets}, line 2, field "tz"`);
    expect(await leftBehind()).toEqual([]);
  });

  it('keeps waitingForWindow exact as a window closes under a run in flight, the run comes back, and the campaign is cancelled', async () => {
    // Monday 9 March 2026 09:59:00 UTC by the window clock: the window closes in a minute.
    const windows: Window[] = [{ days: ['mon'], from: '09:00', to: '10:00' }];
    const open = await clockAt(Date.parse('2026-03-09T10:00:00Z'), 60_000);
    const channel = eventsChannel(t.prefix);
    const runs = ['w1', 'w2', 'w3'].map((runId) => ({ runId }));
    await enqueueCampaign(spec('exact', { timezone: 'UTC', windows }, []), runs, t.producer);
    const scripts = loadScripts(t.redis, t.prefix);
    await scripts.renew(30_000, 'w1', 2, []);
    const first = await scripts.dispatch(1, 30_000);
    expect(first.picks).toHaveLength(1);
    const holder = first.picks[0]!.holder;
    const runId = (JSON.parse(first.picks[0]!.entry) as { runId: string }).runId;
    expect((await scripts.claim(holder, 'tok', 30_000, runId, channel)).kind).toBe('claimed');

    // Two minutes later by the window clock (the same processes share one offset; a second
    // deployment's scripts stand for it here): the interval has passed, the zone is reported.
    process.env[OFFSET_ENV] = String(open + 120_000);
    const later = loadScripts(t.redis, t.prefix);
    const stale = await later.dispatch(10, 30_000);
    expect(stale.picks).toEqual([]);
    expect(stale.staleWindows).toEqual([{ campaignId: 'exact', zone: 'UTC' }]);
    await refreshWindows(t.redis, t.prefix, later, stale.staleWindows, stale.nowMs);
    const next = Date.parse('2026-03-16T09:00:00Z');
    expect(await t.redis.hget(campaignKeys(t.prefix, 'exact').win, 'UTC')).toBe(`${next}|${Date.parse('2026-03-16T10:00:00Z')}`);
    const parked = await later.dispatch(10, 30_000);
    expect(parked.picks).toEqual([]);
    expect(parked.staleWindows).toEqual([]);
    expect(await status('exact')).toMatchObject({ pending: 2, active: 1, waitingForWindow: 2, nextWindowAt: next });
    expect(parked.nextWakeMs).toBeLessThanOrEqual(next - open - 120_000);

    // The run in flight is throttled: its target goes back to its group, and is counted waiting.
    expect(await later.throttle(holder, 'tok', runId, 1000, 'HTTP 429', channel)).not.toBeNull();
    expect(await status('exact')).toMatchObject({ pending: 3, active: 0, waitingForWindow: 3, nextWindowAt: next });
    expect(await t.redis.hget(campaignKeys(t.prefix, 'exact').gstate, '0')).toBe('d');
    expect(await t.redis.hget(campaignKeys(t.prefix, 'exact').winpark, '0')).toBe('3');

    // Cancelled: drained, nothing waits for a window any more.
    await later.control('exact', 'cancel', 'OPERATOR', channel);
    while ((await later.cancelPending('exact', 100, channel)) > 0);
    const s = await status('exact');
    expect(s).toMatchObject({ state: 'cancelled', pending: 0, waitingForWindow: 0 });
    expect(s.nextWindowAt).toBeUndefined();
  });

  it('groups of an open zone behind hundreds of closed ones still start: a step that spends its looks parking groups calls for another', async () => {
    // Kiritimati is days from its window, Kolkata inside it (as in the first test). One group
    // per target: the 200 closed ones come first in the ready list, and a step looks at 68.
    const windows: Window[] = [
      { days: ['sun'], from: '02:30', to: '03:30' },
      { days: ['sun'], from: '12:00', to: '13:00' },
    ];
    await clockAt(Date.parse('2026-03-08T07:00:00Z'), 0);
    const closed = Array.from({ length: 200 }, (_, i) => ({ runId: `c${i}`, tz: 'Pacific/Kiritimati' }));
    const open = ['k1', 'k2', 'k3'].map((runId) => ({ runId, tz: 'Asia/Kolkata' }));
    load([...closed, ...open]);
    await enqueueCampaign(spec('behind', { timezone: '${target.tz}', windows }, [{ key: 'run-${target.runId}', concurrency: 1 }]), [...closed, ...open], t.producer);
    await t.startWorker({ concurrency: 1 });
    const s = await until(() => status('behind'), (v) => v.upgraded === 3 && v.active === 0, 'Kolkata upgraded');
    expect(s).toMatchObject({ pending: 200, waitingForWindow: 200, nextWindowAt: openInterval(windows, 'Pacific/Kiritimati', Date.parse('2026-03-08T07:00:00Z')).from });
    expect([...firstSeen(0).keys()].sort()).toEqual(['k1', 'k2', 'k3']);
  });
  it('a zone a worker cannot compute: its groups wait without the dispatcher looping, and run once a refresh takes', async () => {
    // Monday 9 March 2026 09:30 UTC by the window clock, inside the window; then the stored
    // interval goes, so the first step finds the zone stale.
    const windows: Window[] = [{ days: ['mon'], from: '09:00', to: '10:00' }];
    await clockAt(Date.parse('2026-03-09T09:30:00Z'), 0);
    await enqueueCampaign(spec('unknown', { timezone: 'UTC', windows }, []), [{ runId: 'u1' }, { runId: 'u2' }], t.producer);
    await t.redis.hdel(campaignKeys(t.prefix, 'unknown').win, 'UTC');

    const real = loadScripts(t.redis, t.prefix);
    await real.renew(30_000, 'stand-in', 4, []);
    const counted = { dispatch: 0, picks: 0, refreshes: 0 };
    const scripts: Scripts = {
      ...real,
      dispatch: async (batch, leaseMs) => {
        counted.dispatch++;
        const r = await real.dispatch(batch, leaseMs);
        counted.picks += r.picks.length;
        return r;
      },
    };
    const errors: string[] = [];
    const quiet = (): void => undefined;
    const log = { info: quiet, warn: quiet, debug: quiet, trace: quiet, fatal: quiet, error: (_o: unknown, msg: string) => void errors.push(msg) } as unknown as Logger;
    const queue = new Queue<TargetJobData>(TARGET_QUEUE, { connection: t.redis, prefix: t.prefix });
    // Refreshes throw for half a second from the first (as for a zone this worker's ICU lacks),
    // then store it: the retry comes a second after the failure, so it is the second refresh.
    let failingUntil = Infinity;
    const dispatcher = new Dispatcher(scripts, queue, log, 256, 30_000, async (stale, nowMs) => {
      counted.refreshes++;
      if (failingUntil === Infinity) failingUntil = Date.now() + 500;
      if (Date.now() < failingUntil) throw new RangeError('Invalid time zone specified: UTC');
      await refreshWindows(t.redis, t.prefix, real, stale, nowMs);
    });
    t.defer(async () => {
      dispatcher.stop();
      await queue.close();
    });
    dispatcher.trigger();
    await until(async () => ({ ...counted }), (c) => c.picks === 2, 'both targets dispatched once the refresh took');
    // A step, the failed refresh and one step after it, the retry and the step that picks: a
    // dispatcher looping on a group due at once would have run hundreds of steps in the backoff.
    expect(counted.refreshes).toBe(2);
    expect(counted.dispatch).toBeLessThanOrEqual(5);
    expect(errors).toEqual(['maintenance window refresh failed; its groups wait']);
    expect(await t.redis.hlen(campaignKeys(t.prefix, 'unknown').winwait)).toBe(0);
  });
  it('a worker of the version before windows wakes a group parked for its window (it knows only gstate d), and the count mends once a new worker parks it again', async () => {
    // The dispatch script as it was before maintenance windows (commit 9b9c2f4).
    const oldDir = mkdtempSync(join(tmpdir(), 'upshift-old-scripts-'));
    execFileSync('sh', ['-c', `git archive 9b9c2f4 src/shared/scripts | tar -x -C "${oldDir}"`], { cwd: fileURLToPath(new URL('../..', import.meta.url)) });
    const oldDispatch = renderScript(join(oldDir, 'src/shared/scripts'), 'dispatch-1.lua').lua;

    // Monday 9 March 2026 08:00 UTC by the window clock: the window opens in an hour.
    const windows: Window[] = [{ days: ['mon'], from: '09:00', to: '10:00' }];
    await clockAt(Date.parse('2026-03-09T08:00:00Z'), 0);
    await enqueueCampaign(spec('mixed', { timezone: 'UTC', windows }, []), [{ runId: 'm1' }, { runId: 'm2' }], t.producer);
    const scripts = loadScripts(t.redis, t.prefix);
    await scripts.renew(30_000, 'stand-in', 4, []);
    expect((await scripts.dispatch(10, 30_000)).picks).toEqual([]);
    expect(await status('mixed')).toMatchObject({ waitingForWindow: 2 });

    // An old worker's step finds the group due (its entry moved to now): it wakes and runs it.
    await t.redis.zadd(`${t.prefix}:sched:delayed`, 0, 'mixed|0');
    const old = (await t.redis.eval(oldDispatch, 1, `${t.prefix}:sched:ring`, t.prefix, JSON.stringify(DEFAULTS), 1, 30_000)) as unknown[];
    expect(old.length).toBe(5); // now, next, reclaimed, then one pick
    // The new worker's next look parks the group again, counting only what is left.
    expect((await scripts.dispatch(10, 30_000)).picks).toEqual([]);
    expect(await t.redis.hget(campaignKeys(t.prefix, 'mixed').winpark, '0')).toBe('1');
    expect(await status('mixed')).toMatchObject({ waitingForWindow: 1 });
  });
  it('a group of a per-target-zone campaign without its zone fails closed: it waits, reported as the zone "", and the refresh says why', async () => {
    const windows: Window[] = [{ days: ['mon'], from: '09:00', to: '10:00' }];
    await clockAt(Date.parse('2026-03-09T09:30:00Z'), 0);
    await enqueueCampaign(spec('nozone', { timezone: '${target.tz}', windows }, []), [{ runId: 'n1', tz: 'UTC' }], t.producer);
    await t.redis.hdel(campaignKeys(t.prefix, 'nozone').groups, 'z:0');
    const scripts = loadScripts(t.redis, t.prefix);
    await scripts.renew(30_000, 'stand-in', 4, []);
    const step = await scripts.dispatch(10, 30_000);
    expect(step.picks).toEqual([]);
    expect(step.staleWindows).toEqual([{ campaignId: 'nozone', zone: '' }]);
    expect(step.nextWakeMs).toBeGreaterThan(step.nowMs);
    // The campaign's other stale zones are stored all the same: the zoneless group holds back only itself.
    await t.redis.hdel(campaignKeys(t.prefix, 'nozone').win, 'UTC');
    await expect(refreshWindows(t.redis, t.prefix, scripts, [...step.staleWindows, { campaignId: 'nozone', zone: 'UTC' }], step.nowMs)).rejects.toThrow(
      /campaign nozone.*has no zone/,
    );
    expect(await t.redis.hexists(campaignKeys(t.prefix, 'nozone').win, 'UTC')).toBe(1);
    expect(await status('nozone')).toMatchObject({ pending: 1, active: 0 });
  });
});
