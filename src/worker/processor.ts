import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  classifyError,
  DRY_RUN_OUTCOME,
  NotSentError,
  UpshiftError,
  type HttpClient,
  type Logger,
  type Outcome,
  type OutcomeRecord,
  type ClaimResult,
  type ReasonCode,
  type Scripts,
  type ConnectionEntry,
  type Target,
  type TargetJobData,
} from '../shared/index.js';
import { decide, type BackoffLimits } from './backoff.js';
import type { Archiver } from './archiver.js';
import type { Campaign, CampaignCache } from './campaigns.js';
import type { Dispatcher } from './dispatcher.js';
import type { LeaseKeeper } from './leases.js';
import type { WorkerMetrics } from './metrics.js';
import type { PauseBoard } from './pauses.js';
import { scrubError } from '../shared/scrub.js';

export interface ProcessorDeps {
  readonly redis: Redis;
  readonly scripts: Scripts;
  readonly campaigns: CampaignCache;
  readonly leases: LeaseKeeper;
  readonly http: HttpClient;
  readonly log: Logger;
  readonly limits: BackoffLimits & { readonly maxErrorChars: number; readonly maxRetryAfterWaits: number; readonly leaseMs: number };
  /** Where campaign completion and Retry-After pauses are announced. */
  readonly channel: string;
  readonly pauses: PauseBoard;
  /** Looks for runnable targets (a run ended and its slots may have freed). */
  readonly dispatcher: Pick<Dispatcher, 'trigger' | 'deliver'>;
  /** Takes each new outcome record out of the deployment's slot (archiver.ts). */
  readonly archiver: Pick<Archiver, 'add'>;
  /** False once the worker is closing: a run then hands its next target to BullMQ. */
  readonly continuing: () => boolean;
  readonly dispatchBatch: number;
  /** Counters (and, with tracing on, a span) per target run; see metrics.ts. */
  readonly metrics: Pick<WorkerMetrics, 'start'>;
}

/** Thrown by a dry run's `send` instead of making a call that would change something. */
class DryRunWrite extends Error {}

/** The worker's own registry entry for the campaign, or the refusal every call of it ends in. */
function endpointOf(campaign: Campaign): ConnectionEntry {
  if ('error' in campaign.endpoint) throw new UpshiftError('CONNECTION_NOT_REGISTERED', campaign.endpoint.error);
  return campaign.endpoint.entry;
}

function readCredential(campaign: Campaign): string {
  const ref = endpointOf(campaign).credentialRef;
  const value = process.env[ref];
  if (value === undefined || value === '') {
    throw new UpshiftError('CREDENTIAL_MISSING', `environment variable ${ref} is not set on this worker`);
  }
  return value;
}

/**
 * The BullMQ processor. A job exists only for a target that holds its slots (see dispatch).
 * The run claims the holder's lease, applies the upgrade, and settles in one script call:
 * `finish` (outcome recorded and slots freed together), `retryLater` (slots freed during the
 * backoff) or `throttle` (Retry-After: the connection pauses, the attempt is not used up).
 * What happens is decided by `classifyError` alone; this function only carries it out.
 */
export function createProcessor(deps: ProcessorDeps) {
  const { scripts, campaigns, http, log, leases, limits } = deps;

  /**
   * A run that frees a slot takes the target the same step picked for it and runs it next,
   * without a trip through BullMQ (the pick already holds its slots and lease, so a crash here
   * is recovered like any other run). `finish` claims that pick for this run in the same call,
   * so a continued target costs no `claim` round trip. Other picks go to BullMQ for any worker.
   * A closing worker hands every pick to BullMQ.
   */
  return async function processJob(job: Job<TargetJobData>): Promise<void> {
    let next: Next | undefined = { data: job.data };
    while (next) next = await runTarget(next.data, next.claimed);
  };

  async function runTarget(data: TargetJobData, claimed?: Claimed): Promise<Next | undefined> {
    const { c: campaignId, h: holder, e: entry } = data;
    const campaign = await campaigns.get(campaignId);
    if (!campaign) {
      log.warn({ campaignId, holder }, 'campaign no longer exists; dropping its job');
      return undefined;
    }
    const { op, spec } = campaign;
    const target = JSON.parse(entry) as Target;
    const targetKey = op.targetKey(target);
    const token = claimed?.token ?? leases.newToken();
    const claimedAt = claimed?.sentAt ?? performance.now();
    const run = deps.metrics.start(campaignId, holder, spec.operation.type);
    const claim = claimed?.claim ?? (await scripts.claim(holder, token, limits.leaseMs, targetKey, deps.channel));
    run.claimed(claim);
    // lost / duplicate / done / paused: the scheduler already put the target where it belongs.
    if (claim.kind !== 'claimed') {
      run.end();
      return undefined;
    }
    // The claim (or `finish`, whose dispatch step picked this target) found the connection
    // unpaused: the gate's word from Redis, as of when that call was sent.
    deps.pauses.unpaused(campaign.connection, claimedAt);
    const signal = leases.hold(holder, token, claimedAt);

    const attempt = claim.attemptsMade + 1;
    let conflicts = 0;
    let dispatched = false;
    let continuation: Next | undefined;
    const secrets: string[] = [];
    const finish = async (real: Outcome, reason: ReasonCode, error: string | null): Promise<void> => {
      const outcome = spec.dryRun ? DRY_RUN_OUTCOME[real] : real;
      const rec: OutcomeRecord = {
        target,
        outcome,
        reason,
        attempts: attempt,
        ...(claim.retryAfterWaits > 0 ? { retryAfterWaits: claim.retryAfterWaits } : {}),
        ...(conflicts > 0 ? { conflicts } : {}),
        error: error === null ? null : scrubError(error, secrets, limits.maxErrorChars),
        at: Date.now(),
      };
      const sentAt = performance.now();
      const nextToken = deps.continuing() ? leases.newToken() : undefined;
      const recordJson = JSON.stringify(rec);
      const next = await scripts.finish({
        holder,
        token,
        campaignId,
        targetKey,
        outcome,
        reason,
        recordJson,
        channel: deps.channel,
        maxPicks: deps.dispatchBatch,
        leaseMs: limits.leaseMs,
        ...(nextToken === undefined ? {} : { nextToken }),
      });
      dispatched = true;
      if (next.recorded) deps.archiver.add(campaignId, { targetKey, seq: next.seq, json: recordJson });
      run.settled(outcome, reason, next.recorded);
      const [own, ...others] = next.picks;
      if (own !== undefined && next.ownClaim !== undefined) {
        // Claimed for this run (or, had it an outcome already, released): never BullMQ's.
        const data = { c: own.holder.slice(0, own.holder.lastIndexOf('.')), h: own.holder, e: own.entry };
        if (next.ownClaim.kind === 'claimed') continuation = { data, claimed: { token: nextToken!, claim: next.ownClaim, sentAt } };
        else {
          // Counted as any declined claim is; the target's run ends here.
          const of = (await campaigns.get(data.c))?.spec.operation.type ?? spec.operation.type;
          const declined = deps.metrics.start(data.c, data.h, of);
          declined.claimed(next.ownClaim);
          declined.end();
        }
        await deps.dispatcher.deliver({ ...next, picks: others });
      } else {
        await deps.dispatcher.deliver(next);
      }
    };

    try {
      let result;
      try {
        result = await op.apply({
          operation: spec.operation,
          target,
          // A dry run makes the reads (and the checks and patching that follow them) and stops
          // at the first call that would change something: that target would be upgraded.
          send: async (req) => {
            const endpoint = endpointOf(campaign);
            if (spec.dryRun && req.method !== 'GET') throw new DryRunWrite();
            const { connection } = campaign;
            // Held while the connection is paused, or until Redis has said it is not paused
            // within `pauseGateMs`; then the gate is asked again at the write itself, so a call
            // that waited meanwhile (a busy event loop, a socket being opened) is held, not sent.
            const gate = () => deps.pauses.open(connection);
            let heldFrom = performance.now();
            await deps.pauses.clear(connection, signal);
            run.heldSince(heldFrom);
            return run.call(req.method, async () => {
              for (;;) {
                try {
                  return await http.send(endpoint, req, spec.connection.timeoutMs, signal, gate);
                } catch (err) {
                  if (!(err instanceof NotSentError)) throw err;
                }
                heldFrom = performance.now();
                await deps.pauses.clear(connection, signal);
                run.heldSince(heldFrom);
              }
            });
          },
          credential: () => {
            const value = readCredential(campaign);
            if (!secrets.includes(value)) secrets.push(value);
            return value;
          },
          onConflict: () => {
            conflicts++;
            run.conflict();
          },
        });
      } catch (err) {
        await flushConflicts();
        if (signal.aborted) {
          run.leaseLost();
          return undefined; // the lease is gone: the target was requeued; record nothing
        }
        if (err instanceof DryRunWrite) {
          await finish('upgraded', 'UPGRADED', claim.lastError);
          return continuation;
        }
        const c = classifyError(err);
        const d = decide(c, {
          attempt,
          maxAttempts: spec.retry.attempts,
          backoffMs: spec.retry.backoffMs,
          retryAfterWaits: claim.retryAfterWaits,
        }, limits);
        const error = scrubError(`${c.code}: ${c.message}`, secrets, limits.maxErrorChars);
        if (d.kind === 'throttle') {
          const until = await scripts.throttle(holder, token, targetKey, d.waitMs, error, deps.channel);
          run.throttled(d.waitMs, until);
          log.info({ campaignId, holder, waitMs: d.waitMs, until }, 'Retry-After: connection paused');
        } else if (d.kind === 'retry') {
          run.retried(c.code, await scripts.retryLater(holder, token, targetKey, d.backoffMs, error));
        } else {
          await finish('failed', d.reason, `${c.code}: ${c.message}${d.note ? ` (${d.note})` : ''}`);
        }
        return continuation;
      }
      await flushConflicts();
      await finish(result.outcome, result.reason, claim.lastError);
      return continuation;
    } finally {
      leases.drop(holder);
      run.end();
      if (!dispatched) deps.dispatcher.trigger();
    }
    return continuation;

    // Counted before the outcome, so a reader woken by completion sees every conflict.
    async function flushConflicts(): Promise<void> {
      if (conflicts > 0) await deps.redis.hincrby(campaign!.keys.status, 'conflicts', conflicts);
    }
  };
}

/** A target this worker runs next, and its claim when `finish` made it. */
interface Next {
  readonly data: TargetJobData;
  readonly claimed?: Claimed;
}

interface Claimed {
  readonly token: string;
  readonly claim: ClaimResult;
  /** When the call that claimed it was sent: the lease runs from no earlier than this. */
  readonly sentAt: number;
}
