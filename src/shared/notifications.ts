import { createHmac, timingSafeEqual } from 'node:crypto';
import type { RedisClient } from './redis.js';
import { campaignKeys } from './keys.js';

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

/** A campaign's webhook deliveries, oldest event first; empty when it has none. */
export async function readNotifications(redis: RedisClient, prefix: string, campaignId: string): Promise<NotificationDelivery[]> {
  const hash = await redis.hgetall(campaignKeys(prefix, campaignId).notify);
  const out: (NotificationDelivery & { n: number })[] = [];
  for (const [field, value] of Object.entries(hash)) {
    const m = /^d:(\d+)\|(.+)$/.exec(field);
    if (!m) continue;
    const d = JSON.parse(value) as Record<string, unknown>;
    const body = hash[`e:${m[1]}`];
    const event = body === undefined ? '?' : String((JSON.parse(body) as { event?: unknown }).event);
    const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
    out.push({
      n: Number(m[1]),
      eventId: `${campaignId}:${m[1]}`,
      event,
      notifier: m[2]!,
      status: d.status as DeliveryStatus,
      attempts: num(d.attempts) ?? 0,
      lastError: typeof d.lastError === 'string' && d.lastError !== '' ? d.lastError : undefined,
      createdAt: num(d.createdAt) ?? 0,
      updatedAt: num(d.updatedAt) ?? 0,
      deliveredAt: num(d.deliveredAt),
      failedAt: num(d.failedAt),
      nextAt: num(d.nextAt),
    });
  }
  return out.sort((a, b) => a.n - b.n || a.notifier.localeCompare(b.notifier)).map(({ n: _, ...d }) => d);
}
