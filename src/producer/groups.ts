import type { RedisClient } from '../shared/redis.js';
import {
  campaignKeys,
  cohortOf,
  compileLimits,
  connectionId,
  DEFAULTS,
  InputError,
  LimitKeyError,
  operationFor,
  type CampaignSpec,
  type Target,
} from '../shared/index.js';
import { TARGET_ZONE, zoneOf } from '../shared/windows.js';

/**
 * What the scheduler scripts read from a campaign's meta hash (`<p>:campaign:<id>:meta`): its
 * connection (the Retry-After unit), how to compute a target's key in Lua, its retention, and
 * the webhook events its spec asked for (`notify`).
 */
export function campaignMeta(spec: CampaignSpec, retentionMs = DEFAULTS.retentionMs): Record<string, string | number> {
  const op = operationFor(spec.operation.type);
  return {
    conn: connectionId(spec.connection.baseUrl, spec.connection.credentialRef),
    tk: JSON.stringify([op.targetIdField, ...(op.targetVersionField ? [op.targetVersionField] : [])]),
    retentionMs,
    // Which webhook events the scheduler scripts record, and for whom (scripts/includes/notify.lua).
    ...(spec.notify !== undefined && spec.notify.length > 0 ? { notify: JSON.stringify(spec.notify) } : {}),
    // Maintenance windows: the one zone of every group, or '*' (each group's is `z:<gid>` in
    // :groups). Absent, dispatch does no window check at all (includes/dispatch.lua).
    ...(spec.schedule === undefined ? {} : { sched: TARGET_ZONE.test(spec.schedule.timezone) ? '*' : spec.schedule.timezone }),
  };
}

/**
 * A campaign's groups: targets whose limit keys resolve to the same values share a gid (and a
 * pending list). Numbered in the order first seen; the table in Redis
 * (`<p>:campaign:<id>:groups`, gid -> resolved limits JSON) is the same numbering, so enqueue,
 * discovery and retry all place a target in the same group. The campaign's own key values are
 * scoped to its connection (`<connection name>/<value>`), the registry's are not (limits.ts).
 */
export class GroupTable {
  private readonly gids = new Map<string, number>();
  private unsaved: (string | number)[] = [];
  private readonly limitsOf;
  /**
   * With cohort steps in its rollout, a group's targets also share their step: the index of the
   * first cohort step they match, or 'r' (the rest) for none. Kept as `s:<gid>` in the table,
   * where dispatch reads which groups the current step may serve (includes/steps.lua).
   */
  private readonly stepOf: ((target: Target) => string) | undefined;
  readonly steps = new Map<number, string>();
  /**
   * With a schedule whose zone is a target field (`${target.tz}`), a group's targets also share
   * their zone, kept as `z:<gid>`: dispatch looks up the zone's window by it. A fixed zone is
   * the campaign's (`:meta` `sched`) and numbers no group of its own.
   */
  private readonly zoneOf: ((target: Target, source: string, line: number) => string) | undefined;
  /** The zones of the groups numbered or loaded (with a fixed zone: that one). */
  readonly zones = new Set<string>();

  constructor(spec: CampaignSpec & { readonly id: string }) {
    const connectionName = spec.connection.name;
    // Every stored spec names its registry connection; one without a name predates the
    // registry, and no worker runs it.
    if (typeof connectionName !== 'string' || connectionName === '') {
      throw new InputError('spec', 'the campaign names no registered connection', { field: 'connection', code: 'CONNECTION_NOT_REGISTERED' });
    }
    this.limitsOf = compileLimits(spec.limits ?? [], {
      campaignId: spec.id,
      baseUrl: spec.connection.baseUrl,
      connectionName,
      operation: spec.operation,
    });
    const rollout = spec.rollout;
    if (rollout?.steps.some((s) => typeof s === 'object' && 'where' in s)) {
      this.stepOf = (target) => String(cohortOf(rollout, target) ?? 'r');
    }
    const schedule = spec.schedule;
    if (schedule !== undefined) {
      if (TARGET_ZONE.test(schedule.timezone)) {
        this.zoneOf = (target, source, line) => {
          const z = zoneOf(schedule, target);
          if ('error' in z) throw new InputError(source, z.error, { line, field: z.field });
          return z.zone;
        };
      } else {
        this.zones.add(schedule.timezone);
      }
    }
  }

  /** The table with the groups a campaign already has (a resumed discovery, a retry). */
  static async load(redis: RedisClient, prefix: string, spec: CampaignSpec & { readonly id: string }): Promise<GroupTable> {
    const table = new GroupTable(spec);
    const fields = await redis.hgetall(campaignKeys(prefix, spec.id).groups);
    for (const [field, value] of Object.entries(fields)) {
      if (!/^\d+$/.test(field)) continue;
      const step = fields[`s:${field}`];
      const zone = fields[`z:${field}`];
      if (step !== undefined) table.steps.set(Number(field), step);
      if (zone !== undefined) table.zones.add(zone);
      table.gids.set(identity(value, step, zone), Number(field));
    }
    return table;
  }

  get size(): number {
    return this.gids.size;
  }

  /**
   * The target's gid, numbering a new group when its key values are new. A key the target
   * cannot fill is an `InputError` naming `source`, `line` and `limits[i].key`.
   */
  gidOf(target: Target, source: string, line: number): number {
    const json = this.resolve(target, source, line);
    const step = this.stepOf?.(target);
    const zone = this.zoneOf?.(target, source, line);
    const key = identity(json, step, zone);
    let gid = this.gids.get(key);
    if (gid === undefined) {
      gid = this.gids.size;
      this.gids.set(key, gid);
      this.unsaved.push(gid, json);
      if (step !== undefined) {
        this.steps.set(gid, step);
        this.unsaved.push(`s:${gid}`, step);
      }
      if (zone !== undefined) {
        this.zones.add(zone);
        this.unsaved.push(`z:${gid}`, zone);
      }
    }
    return gid;
  }

  /** The target's gid among the groups known, or undefined. */
  find(target: Target): number | undefined {
    const json = this.resolve(target, 'targets', 0);
    const step = this.stepOf?.(target);
    const zone = this.zoneOf?.(target, 'targets', 0);
    return this.gids.get(identity(json, step, zone));
  }

  /** Writes the groups numbered since the last save (before any target of theirs is staged). */
  async save(redis: RedisClient, prefix: string, campaignId: string): Promise<void> {
    if (this.unsaved.length === 0) return;
    const fields = this.unsaved;
    this.unsaved = [];
    await redis.hset(campaignKeys(prefix, campaignId).groups, ...fields);
  }

  private resolve(target: Target, source: string, line: number): string {
    try {
      return JSON.stringify(this.limitsOf(target));
    } catch (err) {
      if (!(err instanceof LimitKeyError)) throw err;
      throw new InputError(source, `limit key ${err.message}`, { line, field: `limits[${err.limitIndex}].key` });
    }
  }
}

/** A group's identity: its resolved limits, and its cohort step and zone when the campaign has them. */
function identity(json: string, step: string | undefined, zone: string | undefined): string {
  return `${json}${step === undefined ? '' : `\n${step}`}${zone === undefined ? '' : `\nz:${zone}`}`;
}
