import type { RedisClient } from '../shared/redis.js';
import pRetry from 'p-retry';
import { campaignMeta, GroupTable } from './groups.js';
import {
  campaignKeys,
  schedulerKeys,
  classifyError,
  DEFAULTS,
  errorFromResponse,
  eventsChannel,
  HttpClient,
  isSuccess,
  loadScripts,
  operationFor,
  parseJson,
  UpshiftError,
  validateTarget,
  InputError,
  registeredEntry,
  scrubError,
  type ConnectionEntry,
  type ConnectionRegistry,
  type CampaignSpec,
  type DiscoverSpec,
} from '../shared/index.js';

export interface DiscoverOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly retentionMs?: number;
  /** Tries per search page for transient errors (p-retry, exponential). */
  readonly pageAttempts?: number;
  readonly http?: HttpClient;
  readonly env?: NodeJS.ProcessEnv;
  /** The operator's registry: discovery calls only the registered origin, with the registered credential. */
  readonly connections: ConnectionRegistry;
  /**
   * Page in the background: `discoverCampaign` returns once the campaign exists (status
   * `discovering`) and hands the paging to this callback, which must handle its end and errors
   * (already scrubbed). The HTTP API answers 202 this way instead of holding the request.
   */
  readonly background?: (paging: Promise<{ total: number }>) => void;
}

interface Summary {
  workflowId: string;
  version?: number;
  status?: string;
}

/** The Conductor query for a discovery spec: `workflowType IN (X) AND status IN (...) [AND version IN (n)]`. */
export function discoveryQuery(d: DiscoverSpec): string {
  const clauses = [`workflowType IN (${d.workflowName})`, `status IN (${d.status.join(',')})`];
  if (d.version !== undefined) clauses.push(`version IN (${d.version})`);
  return clauses.join(' AND ');
}

/**
 * Creates (or resumes) a campaign whose targets are found by Conductor's search API, paging
 * `size` at a time and adding each page to the live campaign as it arrives, so workers start on
 * the first page while the next is fetched. The offset after each added page is stored with it:
 * after a crash, enqueueing the same spec again resumes from there (a page re-read after the
 * crash adds nothing twice: targets are deduplicated). Executions leave the result set while we
 * page (we upgrade them; they end), which shifts later offsets, so discovery repeats passes over
 * the results until a whole pass finds nothing new. The search index can lag behind the
 * store, so a listed execution may have ended or moved on: the operation reads every execution
 * before it upgrades it, and skips what is no longer RUNNING or already current.
 *
 * The producer reads the credential named by the *registry's* entry for the connection from its
 * environment, and calls only the registered origin (egress guard included). Errors that leave
 * here have the credential and token-shaped values scrubbed, so a log line or an API answer
 * cannot carry them.
 */
export async function discoverCampaign(
  stored: CampaignSpec & { readonly id: string },
  discover: DiscoverSpec,
  opts: DiscoverOptions,
): Promise<{ total: number; created: boolean }> {
  const env = opts.env ?? process.env;
  const found = registeredEntry(stored.connection, opts.connections, stored.operation.type);
  if ('error' in found) throw new InputError('spec', found.error, { field: 'connection', code: 'CONNECTION_NOT_REGISTERED' });
  const { entry } = found;
  const credential = env[entry.credentialRef];
  if (!credential) {
    throw new UpshiftError('CREDENTIAL_MISSING', `discovery needs ${entry.credentialRef} in the producer's environment`);
  }
  const scrubbed = (err: unknown): Error => {
    if (err instanceof InputError) return err;
    if (err instanceof UpshiftError) {
      return new UpshiftError(err.code, scrubError(err.message, [credential], DEFAULTS.maxErrorChars), {
        retryable: err.retryable,
        ...(err.status === undefined ? {} : { status: err.status }),
      });
    }
    const c = classifyError(err);
    return new UpshiftError(c.code, scrubError(c.message, [credential], DEFAULTS.maxErrorChars), { retryable: c.retryable });
  };
  let started;
  try {
    started = await startDiscovery(stored, opts);
  } catch (err) {
    throw scrubbed(err);
  }
  if (started.ended) return { total: started.total, created: false };
  const paging = pages(stored, discover, opts, entry, credential, started.start).catch((err: unknown) => {
    throw scrubbed(err);
  });
  if (opts.background) {
    opts.background(paging);
    return { total: started.total, created: started.created };
  }
  return { total: (await paging).total, created: started.created };
}

/** What both steps of a discovery work with. */
function context(stored: CampaignSpec & { readonly id: string }, opts: DiscoverOptions) {
  const { redis, prefix } = opts;
  return {
    redis,
    prefix,
    campaignId: stored.id,
    keys: campaignKeys(prefix, stored.id),
    scripts: loadScripts(redis, prefix),
    channel: eventsChannel(prefix),
    op: operationFor(stored.operation.type),
  };
}

/** Creates the campaign (status `discovering`), or finds where an earlier producer left off. */
async function startDiscovery(
  stored: CampaignSpec & { readonly id: string },
  opts: DiscoverOptions,
): Promise<{ created: boolean; start: number; total: number; ended: boolean }> {
  const { redis, prefix, campaignId, keys, scripts, channel, op } = context(stored, opts);

  let created = false;
  const [state, discovering, startRaw] = await redis.hmget(keys.status, 'state', 'discovering', 'discoverStart');
  let start = Number(startRaw ?? 0);
  if (state === null) {
    // New campaign: it exists from the start with no targets and grows page by page.
    await redis.hset(keys.meta, campaignMeta(stored, opts.retentionMs));
    await redis.zadd(schedulerKeys(prefix).staging, Date.now() + DEFAULTS.stagingTtlMs, campaignId);
    const res = await scripts.commitCampaign({
      campaignId,
      specJson: JSON.stringify(stored),
      operation: op.type,
      name: stored.name ?? '',
      total: 0,
      groups: 0,
      channel,
      discovering: true,
    });
    created = res.created;
    start = 0;
  } else if (discovering === null) {
    // Discovery ended before: nothing to add.
    return { created: false, start, total: Number(await redis.hget(keys.status, 'total')), ended: true };
  }
  return { created, start, total: Number((await redis.hget(keys.status, 'total')) ?? 0), ended: false };
}

/**
 * Adds pages until a pass finds nothing new, the campaign holds `maxTargets` targets, or
 * `deadlineMs` has passed since this producer started paging.
 */
async function pages(
  stored: CampaignSpec & { readonly id: string },
  discover: DiscoverSpec,
  opts: DiscoverOptions,
  entry: ConnectionEntry,
  credential: string,
  from: number,
): Promise<{ total: number }> {
  const { redis, prefix, campaignId, keys, scripts, channel, op } = context(stored, opts);
  const deadline = Date.now() + discover.deadlineMs;
  let start = from;
  let total = Number((await redis.hget(keys.status, 'total')) ?? 0);
  const groups = await GroupTable.load(redis, prefix, stored);
  const http = opts.http ?? new HttpClient();
  try {
    for (;;) {
      if (Date.now() > deadline) {
        await scripts.appendTargets(campaignId, start, 'stop:DEADLINE', channel, []);
        break;
      }
      const page = await pRetry(() => searchPage(http, entry, stored.connection.timeoutMs, discover, credential, start), {
        retries: (opts.pageAttempts ?? 5) - 1,
        minTimeout: 200,
        shouldRetry: ({ error }) => classifyError(error).retryable,
      });
      const triples: (string | number)[] = [];
      // At most up to the cap: some of these may be known already, so the cap is a ceiling.
      const room = Math.max(0, discover.maxTargets - total);
      page.results.slice(0, room).forEach((summary, i) => {
        // The index can hold versions or statuses the query excluded a moment later; the
        // operation checks each execution anyway, so a stray one costs a read, nothing more.
        const line = start + i + 1;
        const target = validateTarget({ workflowId: summary.workflowId }, op.type, 'search results', line);
        triples.push(op.targetKey(target), groups.gidOf(target, 'search results', line), JSON.stringify(target));
      });
      await groups.save(redis, prefix, campaignId);
      const next = start + page.results.length;
      const endsPass = page.results.length < discover.pageSize || next >= page.totalHits;
      const full = total + triples.length / 3 >= discover.maxTargets;
      const { added, ended } = await scripts.appendTargets(campaignId, next, full ? 'stop:MAX_TARGETS' : endsPass ? 'pass-end' : 'page', channel, triples);
      total += added;
      if (ended) break;
      start = endsPass ? 0 : next;
    }
  } finally {
    if (!opts.http) await http.close();
  }
  return { total: Number(await redis.hget(keys.status, 'total')) };
}

async function searchPage(
  http: HttpClient,
  endpoint: ConnectionEntry,
  timeoutMs: number,
  d: DiscoverSpec,
  credential: string,
  start: number,
): Promise<{ totalHits: number; results: Summary[] }> {
  const res = await http.send(
    endpoint,
    {
      method: 'GET',
      segments: ['api', 'workflow', 'search'],
      query: { query: discoveryQuery(d), start: String(start), size: String(d.pageSize), sort: 'startTime:ASC' },
      headers: { 'x-authorization': credential, accept: 'application/json' },
    },
    timeoutMs,
  );
  if (!isSuccess(res.status)) throw errorFromResponse(res, 'conductor search');
  const body = parseJson(res, 'conductor search') as { totalHits?: unknown; results?: unknown };
  if (typeof body !== 'object' || body === null || typeof body.totalHits !== 'number' || !Array.isArray(body.results)) {
    throw new UpshiftError('UNEXPECTED_RESPONSE', `conductor search: unexpected body: ${res.text.slice(0, 200)}`);
  }
  const results = body.results.filter(
    (r): r is Summary => typeof r === 'object' && r !== null && typeof (r as Summary).workflowId === 'string',
  );
  if (results.length !== body.results.length) {
    throw new UpshiftError('UNEXPECTED_RESPONSE', 'conductor search: a result without a workflowId');
  }
  return { totalHits: body.totalHits, results };
}
