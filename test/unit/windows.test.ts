import { describe, expect, it } from 'vitest';
import { InputError, type CampaignStatus } from '../../src/shared/index.js';
import { loadConfig, warnWindowClockOffset } from '../../src/shared/config.js';
import { changeKey, renderFrame, renderPlainLine } from '../../src/cli/watch.js';
import { isTimeZone, openInterval, scheduleSchema, wallToUtc, zoneOf, type Window } from '../../src/shared/windows.js';

const at = (iso: string): number => Date.parse(iso);
const wall = (iso: string): number => Date.parse(`${iso}Z`);
const iso = (i: { from: number; until: number }) => ({ from: new Date(i.from).toISOString(), until: new Date(i.until).toISOString() });

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri'] as const;
/** The issue's example: weekends whole, weeknights 22:00 to 06:00. */
const ISSUE: Window[] = [
  { days: ['sat', 'sun'], from: '00:00', to: '24:00' },
  { days: [...WEEKDAYS], from: '22:00', to: '06:00' },
];

describe('wall time to UTC', () => {
  it('maps a time in the spring-forward gap to the first instant after it', () => {
    // New York, 8 March 2026: 02:00 EST becomes 03:00 EDT (07:00Z).
    expect(wallToUtc('America/New_York', wall('2026-03-08T02:30:00'))).toBe(at('2026-03-08T07:00:00Z'));
    expect(wallToUtc('America/New_York', wall('2026-03-08T02:00:00'))).toBe(at('2026-03-08T07:00:00Z'));
    expect(wallToUtc('America/New_York', wall('2026-03-08T03:00:00'))).toBe(at('2026-03-08T07:00:00Z'));
    // Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00Z).
    expect(wallToUtc('Europe/Berlin', wall('2026-03-29T02:30:00'))).toBe(at('2026-03-29T01:00:00Z'));
    // Lord Howe moves by 30 minutes: 4 October 2026, 02:00 (+10:30) becomes 02:30 (+11).
    expect(wallToUtc('Australia/Lord_Howe', wall('2026-10-04T02:10:00'))).toBe(at('2026-10-03T15:30:00Z'));
  });

  it('maps an ambiguous time (fall-back) to its first occurrence', () => {
    // New York, 1 November 2026: 01:00-02:00 happens in EDT (-4), then again in EST (-5).
    expect(wallToUtc('America/New_York', wall('2026-11-01T01:30:00'))).toBe(at('2026-11-01T05:30:00Z'));
    expect(wallToUtc('America/New_York', wall('2026-11-01T02:00:00'))).toBe(at('2026-11-01T07:00:00Z'));
    // Berlin, 25 October 2026: 02:00-03:00 in CEST (+2), then CET (+1).
    expect(wallToUtc('Europe/Berlin', wall('2026-10-25T02:30:00'))).toBe(at('2026-10-25T00:30:00Z'));
    expect(wallToUtc('Australia/Lord_Howe', wall('2026-04-05T01:45:00'))).toBe(at('2026-04-04T14:45:00Z'));
  });

  it('keeps odd offsets', () => {
    expect(wallToUtc('Asia/Kolkata', wall('2026-03-09T09:00:00'))).toBe(at('2026-03-09T03:30:00Z'));
    expect(wallToUtc('Asia/Kathmandu', wall('2026-03-09T09:00:00'))).toBe(at('2026-03-09T03:15:00Z'));
    // Chatham in summer time (+13:45) until 5 April 2026.
    expect(wallToUtc('Pacific/Chatham', wall('2026-03-09T09:00:00'))).toBe(at('2026-03-08T19:15:00Z'));
    expect(wallToUtc('Pacific/Chatham', wall('2026-06-08T09:00:00'))).toBe(at('2026-06-07T20:15:00Z'));
  });
});

describe('openInterval', () => {
  it("merges the issue's windows: Friday 22:00 to Monday 00:00 is one interval, across a DST change", () => {
    // Saturday 7 March 2026, 12:00 in New York; the clocks go forward on the Sunday.
    const i = openInterval(ISSUE, 'America/New_York', at('2026-03-07T17:00:00Z'));
    expect(iso(i)).toEqual({ from: '2026-03-07T03:00:00.000Z', until: '2026-03-09T04:00:00.000Z' });
  });

  it('gives the next opening while closed, and opens exactly at from, closes exactly at until', () => {
    // Wednesday 11 March 2026, 11:00 EDT: next is Wednesday 22:00 EDT to Thursday 06:00 EDT.
    const next = openInterval(ISSUE, 'America/New_York', at('2026-03-11T15:00:00Z'));
    expect(iso(next)).toEqual({ from: '2026-03-12T02:00:00.000Z', until: '2026-03-12T10:00:00.000Z' });
    expect(openInterval(ISSUE, 'America/New_York', next.from)).toEqual(next);
    expect(openInterval(ISSUE, 'America/New_York', next.until - 1)).toEqual(next);
    const after = openInterval(ISSUE, 'America/New_York', next.until);
    // Thursday 22:00 EDT to Friday 06:00 EDT.
    expect(iso(after)).toEqual({ from: '2026-03-13T02:00:00.000Z', until: '2026-03-13T10:00:00.000Z' });
    // Friday night runs into the weekend: Friday 22:00 to Monday 00:00.
    expect(iso(openInterval(ISSUE, 'America/New_York', after.until)))
      .toEqual({ from: '2026-03-14T02:00:00.000Z', until: '2026-03-16T04:00:00.000Z' });
  });

  it('a window crossing midnight into the spring-forward day is an hour shorter; into fall-back, an hour longer', () => {
    const sat: Window[] = [{ days: ['sat'], from: '22:00', to: '06:00' }];
    const spring = openInterval(sat, 'America/New_York', at('2026-03-08T05:00:00Z'));
    expect(iso(spring)).toEqual({ from: '2026-03-08T03:00:00.000Z', until: '2026-03-08T10:00:00.000Z' });
    expect(spring.until - spring.from).toBe(7 * 3_600_000);
    const fall = openInterval(sat, 'America/New_York', at('2026-11-01T05:00:00Z'));
    expect(iso(fall)).toEqual({ from: '2026-11-01T02:00:00.000Z', until: '2026-11-01T11:00:00.000Z' });
    expect(fall.until - fall.from).toBe(9 * 3_600_000);
    const berlin = openInterval(sat, 'Europe/Berlin', at('2026-10-24T23:00:00Z'));
    expect(iso(berlin)).toEqual({ from: '2026-10-24T20:00:00.000Z', until: '2026-10-25T05:00:00.000Z' });
    const berlinSpring = openInterval(sat, 'Europe/Berlin', at('2026-03-28T23:00:00Z'));
    expect(iso(berlinSpring)).toEqual({ from: '2026-03-28T21:00:00.000Z', until: '2026-03-29T04:00:00.000Z' });
  });

  it('a window opening in the gap opens when the gap ends; in the repeated hour, at its first occurrence', () => {
    const gap = openInterval([{ days: ['sun'], from: '02:30', to: '04:00' }], 'America/New_York', at('2026-03-08T00:00:00Z'));
    expect(iso(gap)).toEqual({ from: '2026-03-08T07:00:00.000Z', until: '2026-03-08T08:00:00.000Z' });
    const repeated = openInterval([{ days: ['sun'], from: '01:30', to: '03:00' }], 'America/New_York', at('2026-11-01T00:00:00Z'));
    expect(iso(repeated)).toEqual({ from: '2026-11-01T05:30:00.000Z', until: '2026-11-01T08:00:00.000Z' });
    // A window wholly inside the gap never opens that day: the next Sunday's is found.
    const lost = openInterval([{ days: ['sun'], from: '02:10', to: '02:50' }], 'America/New_York', at('2026-03-08T00:00:00Z'));
    expect(iso(lost)).toEqual({ from: '2026-03-15T06:10:00.000Z', until: '2026-03-15T06:50:00.000Z' });
  });

  it('24:00 is the next day 00:00, on a 23-hour and a 25-hour day', () => {
    const sun: Window[] = [{ days: ['sun'], from: '00:00', to: '24:00' }];
    const short = openInterval(sun, 'America/New_York', at('2026-03-08T12:00:00Z'));
    expect(iso(short)).toEqual({ from: '2026-03-08T05:00:00.000Z', until: '2026-03-09T04:00:00.000Z' });
    const long = openInterval(sun, 'America/New_York', at('2026-11-01T12:00:00Z'));
    expect(long.until - long.from).toBe(25 * 3_600_000);
    const evening = openInterval([{ days: ['fri'], from: '18:00', to: '24:00' }], 'Europe/Berlin', at('2026-03-27T12:00:00Z'));
    expect(iso(evening)).toEqual({ from: '2026-03-27T17:00:00.000Z', until: '2026-03-27T23:00:00.000Z' });
  });

  it('a window to 00:00 crosses midnight; the day named is the day it opens', () => {
    const i = openInterval([{ days: ['mon'], from: '20:00', to: '00:00' }], 'Asia/Kolkata', at('2026-03-09T00:00:00Z'));
    expect(iso(i)).toEqual({ from: '2026-03-09T14:30:00.000Z', until: '2026-03-09T18:30:00.000Z' });
    // Opened on Sunday: still open early Monday.
    const sunday = openInterval([{ days: ['sun'], from: '22:00', to: '06:00' }], 'Asia/Kathmandu', at('2026-03-08T20:00:00Z'));
    expect(iso(sunday)).toEqual({ from: '2026-03-08T16:15:00.000Z', until: '2026-03-09T00:15:00.000Z' });
  });

  it('odd offsets and a 30-minute DST change', () => {
    const mon: Window[] = [{ days: ['mon'], from: '09:00', to: '17:00' }];
    expect(iso(openInterval(mon, 'Pacific/Chatham', at('2026-03-08T00:00:00Z')))).toEqual({ from: '2026-03-08T19:15:00.000Z', until: '2026-03-09T03:15:00.000Z' });
    const lhSun: Window[] = [{ days: ['sun'], from: '01:00', to: '04:00' }];
    // 4 October 2026: 02:00 becomes 02:30, so the window is 2h30.
    const lh = openInterval(lhSun, 'Australia/Lord_Howe', at('2026-10-03T00:00:00Z'));
    expect(iso(lh)).toEqual({ from: '2026-10-03T14:30:00.000Z', until: '2026-10-03T17:00:00.000Z' });
  });

  it('every day all day is one interval to the horizon, looked up again there', () => {
    const always: Window[] = [{ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], from: '00:00', to: '24:00' }];
    const now = at('2026-06-10T12:00:00Z');
    const i = openInterval(always, 'UTC', now);
    expect(i.from).toBeLessThanOrEqual(now);
    expect(i.until - now).toBeGreaterThan(10 * 86_400_000);
    const again = openInterval(always, 'UTC', i.until);
    expect(again.from).toBeLessThanOrEqual(i.until);
    expect(again.until).toBeGreaterThan(i.until);
  });
});

describe('schedule validation', () => {
  it('accepts IANA names and a target placeholder, refuses the rest naming the field', () => {
    expect(isTimeZone('America/New_York')).toBe(true);
    expect(isTimeZone('UTC')).toBe(true);
    expect(isTimeZone('America/Nowhere')).toBe(false);
    expect(isTimeZone('+05:30')).toBe(false);
    const ok = scheduleSchema.safeParse({ timezone: '${target.tz}', windows: ISSUE });
    expect(ok.success).toBe(true);
    const bad = (s: unknown) => {
      const r = scheduleSchema.safeParse(s);
      expect(r.success, JSON.stringify(s)).toBe(false);
      return r.error!.issues[0]!.path.join('.');
    };
    expect(bad({ timezone: 'Mars/Olympus', windows: ISSUE })).toBe('timezone');
    expect(bad({ timezone: 'UTC', windows: [{ days: ['sat', 'sunday'], from: '00:00', to: '24:00' }] })).toBe('windows.0.days.1');
    expect(bad({ timezone: 'UTC', windows: [{ days: ['sat'], from: '24:00', to: '06:00' }] })).toBe('windows.0.from');
    expect(bad({ timezone: 'UTC', windows: [{ days: ['sat'], from: '9:00', to: '17:00' }] })).toBe('windows.0.from');
    expect(bad({ timezone: 'UTC', windows: [{ days: ['sat'], from: '09:00', to: '24:30' }] })).toBe('windows.0.to');
    expect(bad({ timezone: 'UTC', windows: [{ days: ['sat'], from: '09:00', to: '09:00' }] })).toBe('windows.0.to');
    expect(bad({ timezone: 'UTC', windows: [] })).toBe('windows');
  });

  it("reads a target's zone from its field", () => {
    const s = scheduleSchema.parse({ timezone: '${target.tz}', windows: ISSUE });
    expect(zoneOf(s, { tz: 'Asia/Kolkata' })).toEqual({ zone: 'Asia/Kolkata' });
    expect(zoneOf(s, {})).toMatchObject({ field: 'tz', error: expect.stringContaining('does not set') });
    expect(zoneOf(s, { tz: 'Asia/Calcutta-ish' })).toMatchObject({ field: 'tz', error: expect.stringContaining('not an IANA') });
    expect(zoneOf(scheduleSchema.parse({ timezone: 'Europe/Berlin', windows: ISSUE }), {})).toEqual({ zone: 'Europe/Berlin' });
  });
});

describe('openInterval against the wall clock, through a year', () => {
  const formats = new Map<string, Intl.DateTimeFormat>();
  const format = (tz: string, kind: 'week' | 'date'): Intl.DateTimeFormat => {
    let f = formats.get(`${kind} ${tz}`);
    if (f === undefined) {
      const fields = kind === 'week' ? { weekday: 'short' as const } : { year: 'numeric' as const, month: 'numeric' as const, day: 'numeric' as const };
      f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', hour: 'numeric', minute: 'numeric', ...fields });
      formats.set(`${kind} ${tz}`, f);
    }
    return f;
  };
  /** Whether the zone's wall clock at `t` is inside a window, read straight from Intl. */
  function insideByWallClock(windows: readonly Window[], tz: string, t: number): boolean {
    const parts = Object.fromEntries(
      format(tz, 'week')
        .formatToParts(t)
        .map((p) => [p.type, p.value]),
    );
    const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.weekday!);
    const yesterday = (day + 6) % 7;
    const m = Number(parts.hour) * 60 + Number(parts.minute);
    const names = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
    return windows.some((w) => {
      const from = Number(w.from.slice(0, 2)) * 60 + Number(w.from.slice(3));
      const to = Number(w.to.slice(0, 2)) * 60 + Number(w.to.slice(3));
      if (to > from) return w.days.includes(names[day]!) && m >= from && m < to;
      return (w.days.includes(names[day]!) && m >= from) || (w.days.includes(names[yesterday]!) && m < to);
    });
  }
  const offset = (tz: string, t: number): number => {
    const p = Object.fromEntries(
      format(tz, 'date')
        .formatToParts(t)
        .map((x) => [x.type, Number(x.value)]),
    );
    return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!) - Math.floor(t / 60_000) * 60_000;
  };
  // Near an offset change the wall clock repeats or skips times, where the rules above decide
  // (first occurrence, first instant after the gap) and a plain wall-clock reading cannot.
  const nearChange = (tz: string, t: number): boolean => offset(tz, t - 3 * 3_600_000) !== offset(tz, t + 3 * 3_600_000);

  const schedules: Window[][] = [
    ISSUE,
    [
      { days: ['tue', 'thu'], from: '09:15', to: '11:45' },
      { days: ['sun'], from: '23:00', to: '01:00' },
    ],
    [{ days: ['wed'], from: '00:00', to: '00:30' }],
  ];
  const zones = ['America/New_York', 'Europe/Berlin', 'Asia/Kolkata', 'Australia/Lord_Howe', 'Pacific/Chatham', 'America/St_Johns'];

  it('is inside a window wherever it says open, outside before it opens, and ends where the windows end', () => {
    let checked = 0;
    for (const windows of schedules) {
      for (const tz of zones) {
        // Every 21 h 40 min through 2026: the hours of the day and the weekdays in turn.
        for (let t = Date.parse('2026-01-01T00:00:00Z'); t < Date.parse('2027-01-01T00:00:00Z'); t += 78_000_000) {
          const i = openInterval(windows, tz, t);
          expect(i.until).toBeGreaterThan(t);
          expect(i.from).toBeLessThan(i.until);
          const inside = (x: number): boolean | undefined => (nearChange(tz, x) ? undefined : insideByWallClock(windows, tz, x));
          const check = (x: number, want: boolean) => {
            const got = inside(x);
            if (got !== undefined) expect(got, `${tz} ${new Date(x).toISOString()} ${JSON.stringify(windows)}`).toBe(want);
          };
          if (i.from <= t) check(t, true);
          else {
            check(t, false);
            check(Math.floor((t + i.from) / 2), false);
            check(i.from - 60_000, false);
          }
          check(i.from, true);
          check(i.until - 60_000, true);
          check(i.until, false);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(7000);
  });
});

describe('upshift status --watch', () => {
  it('shows the targets waiting for a window and the next opening, and prints a line when they change', () => {
    const s = {
      id: 'nightly', state: 'running', operation: 'tallyfy.updateRun', name: '', total: 10, upgraded: 4, skipped: 0, failed: 0,
      wouldUpgrade: 0, wouldSkip: 0, wouldFail: 0, dryRun: false, pending: 6, active: 0, retries: 0, conflicts: 0, reclaimed: 0,
      retryAfterWaits: 0, retryAfterWaitMs: 0, pausedReason: undefined, cancelReason: undefined, undoCampaign: undefined,
      undoOf: undefined, undoError: undefined, rolloutStep: undefined, rolloutSteps: undefined, rolloutLimit: undefined,
      breach: undefined, createdAt: undefined, updatedAt: undefined, finishedAt: undefined, reasons: {},
      waitingForWindow: 6, nextWindowAt: at('2026-03-14T12:30:00Z'),
    } satisfies CampaignStatus;
    const frame = renderFrame(s, { ratePerS: undefined, etaMs: undefined }, { columns: 120, color: false });
    expect(frame.at(-1)).toBe('6 targets waiting for a maintenance window; next window opens 2026-03-14T12:30:00.000Z');
    expect(renderPlainLine(s, { ratePerS: undefined, etaMs: undefined })).toContain('waitingForWindow=6 nextWindowAt=2026-03-14T12:30:00.000Z');
    expect(changeKey({ ...s, waitingForWindow: 3 })).not.toBe(changeKey(s));
  });
});

describe('UPSHIFT_WINDOW_CLOCK_OFFSET_MS', () => {
  it('is parsed with the rest of the environment: a malformed value stops at start naming the variable; a set one is warned about', () => {
    expect(loadConfig({}).windowClockOffsetMs).toBe(0);
    expect(loadConfig({ UPSHIFT_WINDOW_CLOCK_OFFSET_MS: '-3600000' }).windowClockOffsetMs).toBe(-3_600_000);
    for (const bad of ['1h', '1.5', '1e30']) {
      let err: unknown;
      try {
        loadConfig({ UPSHIFT_WINDOW_CLOCK_OFFSET_MS: bad });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect(err).toMatchObject({ field: 'UPSHIFT_WINDOW_CLOCK_OFFSET_MS' });
    }
    const warned: string[] = [];
    const log = { warn: (_o: object, msg: string) => void warned.push(msg) };
    warnWindowClockOffset(loadConfig({}), log);
    expect(warned).toEqual([]);
    warnWindowClockOffset(loadConfig({ UPSHIFT_WINDOW_CLOCK_OFFSET_MS: '60000' }), log);
    expect(warned).toEqual([expect.stringContaining('UPSHIFT_WINDOW_CLOCK_OFFSET_MS is set')]);
  });
});
