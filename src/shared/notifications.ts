import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RedisClient } from './redis.js';
import { campaignKeys } from './keys.js';
import { DEFAULTS } from './config.js';

/**
 * Signed webhooks (README, "Notifications"): the signature every delivery carries and the
 * per-campaign delivery records `upshift notifications` lists. Events are recorded by the
 * scheduler scripts (scripts/includes/notify.lua) and delivered by worker/notifier.ts.
 */

/** The header naming the event: the receiver's idempotency key (the same on every attempt). */
export const EVENT_ID_HEADER = 'Upshift-Event-Id';
/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, Stripe's scheme. */
export const SIGNATURE_HEADER = 'Upshift-Signature';

/** The hex HMAC-SHA256 of `<t>.<body>` under `secret`. */
export function signPayload(secret: string, timestampS: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestampS}.${body}`).digest('hex');
}

/** The `Upshift-Signature` value of `body` signed at `timestampS` (unix seconds). */
export function signatureHeader(secret: string, timestampS: number, body: string): string {
  return `t=${timestampS},v1=${signPayload(secret, timestampS, body)}`;
}

/**
 * What a receiver does (docs/API.md has the same, standalone): the header's `v1` must equal the
 * HMAC of `<t>.<body>` (compared in constant time) and `t` must be within `toleranceS` of now,
 * so a captured delivery cannot be replayed later.
 */
export function verifySignature(secret: string, header: string, body: string, toleranceS = 300, nowS = Math.floor(Date.now() / 1000)): boolean {
  const parts = header.split(',').map((p) => p.trim().split('='));
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t) || Math.abs(nowS - t) > toleranceS) return false;
  const expected = Buffer.from(signPayload(secret, t, body), 'hex');
  return parts
    .filter(([k, v]) => k === 'v1' && v !== undefined && /^[0-9a-f]{64}$/.test(v))
    .some(([, v]) => timingSafeEqual(Buffer.from(v!, 'hex'), expected));
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One event's delivery to one notifier, as `upshift notifications` shows it. */
export interface NotificationDelivery {
  readonly eventId: string;
  readonly event: string;
  readonly notifier: string;
  readonly status: DeliveryStatus;
  /** Attempts started (an attempt whose sender died counts). */
  readonly attempts: number;
  /** The last failed attempt's error (scrubbed), also after a later success. */
  readonly lastError: string | undefined;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly deliveredAt: number | undefined;
  readonly failedAt: number | undefined;
  /** When the next attempt is due (pending, after a failed attempt). */
  readonly nextAt: number | undefined;
}

/** A campaign's webhook deliveries, oldest event first; empty when it has none. Every one: see `readNotificationPage` for a bounded read. */
export async function readNotifications(redis: RedisClient, prefix: string, campaignId: string): Promise<NotificationDelivery[]> {
  return (await readNotificationPage(redis, prefix, campaignId, Number.POSITIVE_INFINITY)).deliveries;
}

/**
 * A campaign's newest `limit` deliveries (by event number, then notifier), oldest first;
 * `truncated` when it has more. Reads the field names, then only the records and bodies shown:
 * a campaign with many events costs the API and the dashboard's poll its names, not its bodies.
 */
export async function readNotificationPage(
  redis: RedisClient,
  prefix: string,
  campaignId: string,
  limit: number = DEFAULTS.notificationsListed,
): Promise<{ deliveries: NotificationDelivery[]; truncated: boolean }> {
  const key = campaignKeys(prefix, campaignId).notify;
  const fields: { field: string; n: number; notifier: string }[] = [];
  for (const field of await redis.hkeys(key)) {
    const m = /^d:(\d+)\|(.+)$/.exec(field);
    if (m) fields.push({ field, n: Number(m[1]), notifier: m[2]! });
  }
  fields.sort((a, b) => a.n - b.n || a.notifier.localeCompare(b.notifier));
  const shown = fields.length > limit ? fields.slice(fields.length - limit) : fields;
  if (shown.length === 0) return { deliveries: [], truncated: false };
  const events = [...new Set(shown.map((f) => f.n))];
  const values = await redis.hmget(key, ...shown.map((f) => f.field), ...events.map((n) => `e:${n}`));
  const bodies = new Map(events.map((n, i) => [n, values[shown.length + i]]));
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  const deliveries: NotificationDelivery[] = [];
  shown.forEach(({ n, notifier }, i) => {
    const value = values[i];
    // Gone between the two reads (the campaign's data expired): left out.
    if (value === null || value === undefined) return;
    const d = JSON.parse(value) as Record<string, unknown>;
    const body = bodies.get(n);
    const event = body === null || body === undefined ? '?' : String((JSON.parse(body) as { event?: unknown }).event);
    deliveries.push({
      eventId: `${campaignId}:${n}`,
      event,
      notifier,
      status: d.status as DeliveryStatus,
      attempts: num(d.attempts) ?? 0,
      lastError: typeof d.lastError === 'string' && d.lastError !== '' ? d.lastError : undefined,
      createdAt: num(d.createdAt) ?? 0,
      updatedAt: num(d.updatedAt) ?? 0,
      deliveredAt: num(d.deliveredAt),
      failedAt: num(d.failedAt),
      nextAt: num(d.nextAt),
    });
  });
  return { deliveries, truncated: shown.length < fields.length };
}
