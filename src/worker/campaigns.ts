import type { RedisClient } from '../shared/redis.js';
import {
  campaignKeys,
  DEFAULTS,
  connectionId,
  operationFor,
  registeredEntry,
  isAdaptive,
  type CampaignSpec,
  type CampaignKeys,
  type ConnectionEntry,
  type ConnectionRegistry,
  type OperationModule,
} from '../shared/index.js';

export interface Campaign {
  readonly id: string;
  readonly spec: CampaignSpec;
  readonly op: OperationModule;
  readonly keys: CampaignKeys;
  /** The Retry-After unit: base URL and credential name. */
  readonly connection: string;
  /**
   * This worker's own registry entry for the campaign's connection: the base URL, variable and
   * network rule every call uses. Or why there is none: then every target fails
   * `CONNECTION_NOT_REGISTERED` without a call, whatever the stored spec says.
   */
  readonly endpoint: { readonly entry: ConnectionEntry } | { readonly error: string };
  /** A limit of it is adaptive: its runs report their calls' latency to the scripts (settle.ts). */
  readonly adaptive: boolean;
}

/**
 * Campaign specs are immutable once committed, so each worker reads one once and keeps it.
 * Bounded: the oldest entries go first when many campaigns pass through one process.
 */
export class CampaignCache {
  private readonly entries = new Map<string, Promise<Campaign | null>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly connections: ConnectionRegistry,
    private readonly maxEntries: number = DEFAULTS.campaignCacheEntries,
  ) {}

  get(id: string): Promise<Campaign | null> {
    let entry = this.entries.get(id);
    if (!entry) {
      entry = this.load(id);
      this.entries.set(id, entry);
      if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      // A failed or missing read is not cached: the next job asks again.
      entry.then(
        (c) => c === null && this.entries.delete(id),
        () => this.entries.delete(id),
      );
    }
    return entry;
  }

  private async load(id: string): Promise<Campaign | null> {
    const keys = campaignKeys(this.prefix, id);
    const json = await this.redis.get(keys.spec);
    if (json === null) return null;
    const parsed = JSON.parse(json) as CampaignSpec;
    // The stored spec is input too: a timeout outside the spec's bounds is brought back inside.
    const t = parsed.connection.timeoutMs;
    const timeoutMs = typeof t === 'number' && Number.isFinite(t) ? Math.min(Math.max(t, DEFAULTS.minCallTimeoutMs), DEFAULTS.maxCallTimeoutMs) : DEFAULTS.callTimeoutMs;
    const spec: CampaignSpec = { ...parsed, connection: { ...parsed.connection, timeoutMs } };
    return {
      id,
      spec,
      op: operationFor(spec.operation.type),
      keys,
      connection: connectionId(spec.connection.baseUrl, spec.connection.credentialRef),
      endpoint: registeredEntry(spec.connection, this.connections, spec.operation.type),
      adaptive: spec.limits.some((l) => isAdaptive(l.concurrency)),
    };
  }
}
