import type { RedisClient } from '../../shared/redis.js';
import { campaignKeys, DEFAULTS, redisTimeMs, schedulerKeys, type ResolvedLimit } from '../../shared/index.js';

/** One resolved limit key value of a campaign and how full it is right now. */
export interface LimitUsage {
  /** The resolved key value (e.g. `tenant-acme`), as the scheduler names its slot set. */
  readonly key: string;
  /** Live slots on the key: targets of every campaign sharing the value, holding an unexpired lease. */
  readonly inUse: number;
  /**
   * The key's concurrency figure as the scheduler applies it (the smallest among the campaigns
   * sharing it; an adaptive limit's current figure); null for a rate-only limit.
   */
  readonly concurrency: number | null;
  /** True when no further target of this campaign may start on the key (`inUse >= concurrency`). */
  readonly atCapacity: boolean;
}

export interface LimitUsageReport {
  /** At-capacity keys first, then by slots in use, then by key. */
  readonly keys: readonly LimitUsage[];
  /** True when the campaign has more distinct keys than were read (`maxKeys`). */
  readonly truncated: boolean;
}

/**
 * Slots in use vs. concurrency for each limit key value a campaign's targets resolved to. The
 * keys come from the campaign's group table (gid -> resolved limits, written at enqueue); a
 * slot is a member of the key's slot set scored with its lease expiry, and the dispatch step
 * counts only unexpired ones, so this counts the same way (against Redis's clock, as the
 * scripts do). Reads at most `maxKeys` distinct keys, so a campaign with a key per tenant costs
 * a bounded read. `null` when there is no such campaign.
 */
export async function readLimitUsage(
  redis: RedisClient,
  prefix: string,
  campaignId: string,
  opts: { readonly maxKeys?: number } = {},
): Promise<LimitUsageReport | null> {
  const maxKeys = opts.maxKeys ?? DEFAULTS.limitUsageMaxKeys;
  const keys = campaignKeys(prefix, campaignId);
  if ((await redis.exists(keys.status)) === 0) return null;

  // A key value can appear in many groups (and twice in one campaign's limits): the dispatch
  // step refuses a target once any of its limits on the key is full, so the smallest figure counts.
  const concurrencyOf = new Map<string, number>();
  /** Adaptive keys: [min, initial], for the figure before any call has moved it. */
  const adaptiveOf = new Map<string, readonly [number, number]>();
  let truncated = false;
  let cursor = '0';
  scan: do {
    const [next, flat] = await redis.hscan(keys.groups, cursor, 'COUNT', 500);
    cursor = next;
    for (let i = 0; i < flat.length; i += 2) {
      if (!/^\d+$/.test(flat[i]!)) continue;
      for (const [key, concurrency, , , , adaptive] of JSON.parse(flat[i + 1]!) as ResolvedLimit[]) {
        const known = concurrencyOf.get(key);
        if (known === undefined && concurrencyOf.size >= maxKeys) {
          truncated = true;
          break scan;
        }
        if (adaptive !== undefined) adaptiveOf.set(key, [adaptive[0], adaptive[2]]);
        if (known === undefined || (concurrency > 0 && (known === 0 || concurrency < known))) concurrencyOf.set(key, concurrency);
      }
    }
  } while (cursor !== '0');

  if (concurrencyOf.size === 0) return { keys: [], truncated };
  const nowMs = redisTimeMs(await redis.time());
  const { slot, cap, adapt } = schedulerKeys(prefix);
  const entries = [...concurrencyOf];
  const pipeline = redis.pipeline();
  // A connection-scoped key has one capacity across the campaigns using it (the smallest figure
  // among the live ones, `=c` of its capacity record): that is the figure the dispatch obeys.
  // An adaptive key's figure is its learnt one (includes/adaptive.lua), never above the others.
  for (const [key] of entries) pipeline.zcount(slot(key), `(${nowMs}`, '+inf').hget(cap(key), '=c').hget(adapt(key), 'c');
  const counts = (await pipeline.exec()) ?? [];
  const out = entries.map(([key, own], i): LimitUsage => {
    const [err, n] = counts[3 * i] ?? [null, 0];
    if (err) throw err;
    const shared = Number((counts[3 * i + 1]?.[1] as string | null) ?? 0);
    let concurrency = shared > 0 && (own === 0 || shared < own) ? shared : own;
    const adaptive = adaptiveOf.get(key);
    if (adaptive !== undefined) {
      const learnt = counts[3 * i + 2]?.[1] as string | null | undefined;
      const figure = Math.max(adaptive[0], Math.floor(learnt == null ? adaptive[1] : Number(learnt)));
      if (concurrency === 0 || figure < concurrency) concurrency = figure;
    }
    const inUse = Number(n);
    return { key, inUse, concurrency: concurrency > 0 ? concurrency : null, atCapacity: concurrency > 0 && inUse >= concurrency };
  });
  out.sort((a, b) => Number(b.atCapacity) - Number(a.atCapacity) || b.inUse - a.inUse || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { keys: out, truncated };
}
