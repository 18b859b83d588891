import { z } from 'zod';

/**
 * Maintenance windows (README, "Maintenance windows"): a campaign's `schedule` lets a target
 * start only while its time zone's wall clock is inside one of the windows. Lua has no time-zone
 * database, so this module turns a schedule and a zone into instants (`openInterval`), which the
 * dispatch step compares with Redis's clock (scripts/includes/dispatch.lua).
 *
 * Wall time to UTC follows RFC 5545's rule for local times: a time that does not exist (the
 * spring-forward gap) is the first instant after the gap, an ambiguous one (fall-back) its first
 * occurrence. "24:00" is the next day's 00:00. `to` at or before `from` crosses midnight; a
 * window belongs to the day it opens.
 */

export const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Day = (typeof DAYS)[number];

const HHMM = /^(?:[01]\d|2[0-3]):[0-5]\d$/;
/** A zone placeholder: the target's own field names its zone. */
export const TARGET_ZONE = /^\$\{target\.([A-Za-z_][A-Za-z0-9_]*)\}$/;
// IANA names only (Area/Location, or UTC-like single names): Intl also takes offsets such as
// "+05:30" on some versions, which are not zones and have no DST rules.
const IANA_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+){0,2}$/;

const windowSchema = z
  .strictObject({
    days: z
      .array(z.enum(DAYS, { message: `a day: ${DAYS.join(', ')}` }))
      .min(1, 'at least one day')
      .refine((d) => new Set(d).size === d.length, 'lists a day twice'),
    from: z.string().regex(HHMM, 'a time "HH:MM" from 00:00 to 23:59'),
    to: z.string().regex(/^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/, 'a time "HH:MM" from 00:00 to 24:00'),
  })
  .refine((w) => w.from !== w.to, { message: 'from and to are equal: an empty window', path: ['to'] });

export const scheduleSchema = z.strictObject({
  timezone: z
    .string()
    .refine((tz) => TARGET_ZONE.test(tz) || isTimeZone(tz), 'an IANA time zone name (e.g. "America/New_York") or "${target.<field>}"'),
  windows: z.array(windowSchema).min(1, 'at least one window').max(50),
});

export type Schedule = z.output<typeof scheduleSchema>;
export type Window = Schedule['windows'][number];

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** Whether `tz` is an IANA zone name this runtime knows. */
export function isTimeZone(tz: string): boolean {
  if (!IANA_NAME.test(tz)) return false;
  try {
    formatter(tz);
    return true;
  } catch {
    return false;
  }
}

/** The zone of a target under a schedule: the fixed zone, or the target's field. */
export function zoneOf(schedule: Schedule, target: Readonly<Record<string, unknown>>): { zone: string } | { error: string; field: string } {
  const m = TARGET_ZONE.exec(schedule.timezone);
  if (m === null) return { zone: schedule.timezone };
  const field = m[1]!;
  const v = target[field];
  if (v === undefined || v === null || v === '') return { error: `schedule.timezone is \${target.${field}}, which this target does not set`, field };
  if (typeof v !== 'string' || !isTimeZone(v)) return { error: `${JSON.stringify(v)} is not an IANA time zone name (schedule.timezone)`, field };
  return { zone: v };
}

/** The wall clock of `tz` at instant `t` as if it were UTC (ms), i.e. t + the zone's offset then. */
function wallOf(tz: string, t: number): number {
  // en-US numeric: "3/8/2026, 07:00:00" (format, not formatToParts: several times faster).
  const m = WALL.exec(formatter(tz).format(t));
  if (m === null) throw new Error(`unexpected date format for ${tz}`);
  return Date.UTC(Number(m[3]), Number(m[1]) - 1, Number(m[2]), Number(m[4]), Number(m[5]), Number(m[6])) + (t - Math.floor(t / 1000) * 1000);
}
const WALL = /^(\d+)\/(\d+)\/(-?\d+),? (\d+):(\d+):(\d+)$/;

const offsetAt = (tz: string, t: number): number => wallOf(tz, t) - t;

/**
 * The instant a wall time (given as if UTC, ms) of `tz` happens: its first occurrence when the
 * clocks went back over it, the first instant after the gap when they jumped over it.
 */
export function wallToUtc(tz: string, wall: number): number {
  const before = offsetAt(tz, wall - 86_400_000);
  const after = offsetAt(tz, wall + 86_400_000);
  // No change of offset within a day either side (nearly always): the one candidate is it.
  if (before === after && wallOf(tz, wall - before) === wall) return wall - before;
  const candidates = [...new Set([before, after, offsetAt(tz, wall - before), offsetAt(tz, wall - after)])]
    .map((o) => wall - o)
    .filter((t) => wallOf(tz, t) === wall)
    .sort((a, b) => a - b);
  if (candidates.length > 0) return candidates[0]!;
  // In a gap: the offset grew from `lo` to `hi` at one instant between wall - hi and wall - lo;
  // offsets change on whole minutes, so a search over minutes finds it.
  let lo = Math.floor((wall - Math.max(before, after)) / 60_000);
  let hi = Math.ceil((wall - Math.min(before, after)) / 60_000);
  const start = offsetAt(tz, lo * 60_000);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(tz, mid * 60_000) === start) lo = mid;
    else hi = mid;
  }
  return hi * 60_000;
}

const DAY_MS = 86_400_000;
const minutes = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

export interface OpenInterval {
  /** When the interval opens (ms since the epoch); at or before `now` when open now. */
  readonly from: number;
  /** When it closes: the first instant outside it. */
  readonly until: number;
}

/** Days looked back (a window opened yesterday may still be open) and ahead (a weekly window, then merged neighbours). */
const LOOK_BACK_DAYS = 2;
const LOOK_AHEAD_DAYS = 15;

/**
 * The interval of `tz`'s windows that contains `nowMs`, or else the next one. Windows that touch
 * or overlap form one interval (sat 00:00-24:00, sun 00:00-24:00 and fri 22:00-06:00: Friday
 * 22:00 to Monday 00:00). An interval is looked at for about two weeks around now: one open for
 * longer ends, here, at that horizon, and is looked up again when it is reached.
 */
export function openInterval(windows: readonly Window[], tz: string, nowMs: number): OpenInterval {
  const today = Math.floor(wallOf(tz, nowMs) / DAY_MS) * DAY_MS;
  const spans: [number, number][] = [];
  for (let d = -LOOK_BACK_DAYS; d <= LOOK_AHEAD_DAYS; d++) {
    // Spans come in day order and none starts before its day's 00:00, which is no earlier than
    // 14 h before that wall time read as UTC: once an interval ahead ends before that, no later
    // day can reach it.
    if (d > 0) {
      const found = mergeSpans(spans).find((s) => s[1] > nowMs);
      if (found !== undefined && found[1] < today + d * DAY_MS - MAX_OFFSET_MS) return { from: found[0], until: found[1] };
    }
    const date = today + d * DAY_MS;
    const day = DAYS[new Date(date).getUTCDay()]!;
    for (const w of windows) {
      if (!w.days.includes(day)) continue;
      const from = minutes(w.from);
      const to = minutes(w.to);
      const start = wallToUtc(tz, date + from * 60_000);
      const end = wallToUtc(tz, date + (to > from ? 0 : DAY_MS) + to * 60_000);
      // A window wholly inside a spring-forward gap has no instant at all.
      if (end > start) spans.push([start, end]);
    }
  }
  const found = mergeSpans(spans).find((s) => s[1] > nowMs);
  if (found === undefined) throw new Error(`no window of ${tz} opens within ${LOOK_AHEAD_DAYS} days`);
  return { from: found[0], until: found[1] };
}

/** Spans sorted and joined where they touch or overlap. */
function mergeSpans(spans: readonly (readonly [number, number])[]): [number, number][] {
  const merged: [number, number][] = [];
  for (const s of [...spans].sort((a, b) => a[0] - b[0])) {
    const last = merged[merged.length - 1];
    if (last !== undefined && s[0] <= last[1]) last[1] = Math.max(last[1], s[1]);
    else merged.push([s[0], s[1]]);
  }
  return merged;
}

/** No zone is further ahead of UTC than +14:00 (Kiritimati); an hour more for safety. */
const MAX_OFFSET_MS = 15 * 3_600_000;

/** The value stored per zone in a campaign's `:win` hash: `<from>|<until>`. */
export function encodeInterval(i: OpenInterval): string {
  return `${i.from}|${i.until}`;
}
