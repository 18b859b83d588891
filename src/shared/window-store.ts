import type { RedisClient } from './redis.js';
import { redisTimeMs } from './redis.js';
import { windowClockOffsetMs } from './config.js';
import { campaignKeys } from './keys.js';
import type { Scripts } from './scripts/index.js';
import { encodeInterval, openInterval, type Schedule } from './windows.js';

/**
 * The `:win` hash of a campaign with a schedule: per zone its open or next interval, on the
 * window clock (Redis's TIME + `windowClockOffsetMs`), which dispatch compares with the same
 * clock (scripts/includes/windows.lua). Written by the producer before commit, and by a worker
 * when a dispatch step finds a zone's interval passed.
 */
export function windowFields(schedule: Schedule, zones: Iterable<string>, windowNowMs: number): string[] {
  const fields: string[] = [];
  for (const zone of zones) fields.push(zone, encodeInterval(openInterval(schedule.windows, zone, windowNowMs)));
  return fields;
}

/** The producer's write, before commit: every zone of the staged groups. */
export async function storeWindows(redis: RedisClient, key: string, schedule: Schedule, zones: ReadonlySet<string>): Promise<void> {
  if (zones.size === 0) return;
  const now = redisTimeMs(await redis.time()) + windowClockOffsetMs();
  await redis.hset(key, ...windowFields(schedule, zones, now));
}

/**
 * A worker's refresh of the zones a dispatch step reported (`DispatchResult.staleWindows`), at
 * the step's Redis time: the next interval of each, computed from the stored spec.
 */
export async function refreshWindows(
  redis: RedisClient,
  prefix: string,
  scripts: Scripts,
  stale: readonly { readonly campaignId: string; readonly zone: string }[],
  redisNowMs: number,
): Promise<void> {
  const byCampaign = new Map<string, Set<string>>();
  for (const { campaignId, zone } of stale) {
    let zones = byCampaign.get(campaignId);
    if (zones === undefined) byCampaign.set(campaignId, (zones = new Set()));
    zones.add(zone);
  }
  const now = redisNowMs + windowClockOffsetMs();
  const failures: string[] = [];
  // Every campaign is tried: one that cannot be computed does not hold the others' groups.
  for (const [campaignId, zones] of byCampaign) {
    try {
      const json = await redis.get(campaignKeys(prefix, campaignId).spec);
      if (json === null) continue; // gone: nothing waits for it
      const schedule = (JSON.parse(json) as { schedule?: Schedule }).schedule;
      if (schedule === undefined) throw new Error('its stored spec has no schedule');
      // A group without its zone must not hold back the campaign's other zones.
      const known = [...zones].filter((z) => z !== '');
      // A refusal (the campaign ended) leaves nothing waiting.
      if (known.length > 0) await scripts.setWindows(campaignId, windowFields(schedule, known, now));
      if (zones.has('')) throw new Error('a group of this per-target-zone campaign has no zone (z:<gid> in :groups); it waits');
    } catch (err) {
      failures.push(`campaign ${campaignId}, zones ${[...zones].join(', ')}: ${(err as Error).message}`);
    }
  }
  if (failures.length > 0) throw new Error(failures.join('; '));
}
