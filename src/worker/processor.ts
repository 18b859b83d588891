import type { Job } from 'bullmq';
import {
  decodeJob,
  NotSentError,
  UpshiftError,
  type ConnectionEntry,
  type HttpClient,
  type HttpRequest,
  type HttpResponse,
  type Target,
  type TargetJobData,
  type AbortSignalLike,
} from '../shared/index.js';
import type { ApplyResult } from '../shared/operations/types.js';
import type { Campaign, CampaignCache } from './campaigns.js';
import type { LeaseKeeper } from './leases.js';
import type { TargetRun, WorkerMetrics } from './metrics/index.js';
import { GivenBack, type PauseBoard } from './pauses.js';
import { settle, type Attempt, type AttemptEnd, type Next, type SettleDeps } from './settle.js';

export interface ProcessorDeps extends SettleDeps {
  readonly campaigns: CampaignCache;
  readonly leases: LeaseKeeper;
  readonly http: HttpClient;
  readonly pauses: PauseBoard;
  /** Counters (and, with tracing on, a span) per target run; see metrics/run-recorder.ts. */
  readonly metrics: Pick<WorkerMetrics, 'start'>;
}

/** Thrown by a dry run's `send` instead of making a call that would change something. */
class DryRunWrite extends Error {}

/**
 * The BullMQ processor. A job exists only for a target that holds its slots (see dispatch).
 * A run claims the holder's lease and applies the upgrade; the operation only returns or
 * throws, and settle.ts records what follows. `finish` may hand back the next target to run.
 */
export function createProcessor(deps: ProcessorDeps) {
  return async function processJob(job: Job<TargetJobData>): Promise<void> {
    let next: Next | undefined = { job: decodeJob(job.data) };
    while (next) next = await runTarget(deps, next);
  };
}

async function runTarget(deps: ProcessorDeps, { job, claimed }: Next): Promise<Next | undefined> {
  const campaign = await deps.campaigns.get(job.campaignId);
  if (!campaign) {
    deps.log.warn({ campaignId: job.campaignId, holder: job.holder }, 'campaign no longer exists; dropping its job');
    return undefined;
  }
  const target = JSON.parse(job.targetJson) as Target;
  const targetKey = campaign.op.targetKey(target);
  const token = claimed?.token ?? deps.leases.newToken();
  const claimedAt = claimed?.sentAt ?? performance.now();
  const run = deps.metrics.start(job.campaignId, job.holder, campaign.spec.operation.type);
  const claim = claimed?.claim ?? (await deps.scripts.claim(job.holder, token, deps.limits.leaseMs, targetKey, deps.channel));
  run.claimed(claim);
  // lost / duplicate / done / paused: the scheduler already put the target where it belongs.
  if (claim.kind !== 'claimed') {
    run.end();
    return undefined;
  }
  // The claim (or `finish`, whose dispatch step picked this target) found the connection
  // unpaused: the gate's word from Redis, as of when that call was sent.
  deps.pauses.unpaused(campaign.connection, claimedAt);
  const signal = deps.leases.hold(job.holder, token, claimedAt);
  const attempt: Attempt = { job, campaign, target, targetKey, token, claim, signal, run };
  try {
    return await settle(deps, attempt, await applyOperation(deps, attempt));
  } finally {
    deps.leases.drop(job.holder, token);
    run.end();
  }
}

/** Runs the campaign's operation on the target; never throws. */
async function applyOperation(deps: ProcessorDeps, a: Attempt): Promise<AttemptEnd> {
  const { campaign, run } = a;
  const secrets: string[] = [];
  let conflicts = 0;
  // Campaigns stored before `undo` existed have none: they keep data, as the default says.
  const captureUndo = campaign.spec.undo !== false && !campaign.spec.dryRun;
  const earlier = captureUndo && a.claim.keptUndo !== undefined ? (JSON.parse(a.claim.keptUndo) as unknown) : undefined;
  // The pre-image in `:attempts` now: an earlier run's, until this run keeps its own before its write.
  let kept = earlier;
  let slowestCallMs: number | undefined;
  let sentCallMs: number | undefined;
  // Set once this run may have written (a call other than a GET left): it no longer gives its
  // target back at a pause (giveBackIfOver), as a run again would find its own write.
  const sent = { wrote: false };
  // No spreads: this runs for every target.
  const end = (how: { result: ApplyResult } | { error: unknown }): AttemptEnd => {
    const e: { result?: ApplyResult; error?: unknown; conflicts: number; secrets: string[]; kept: unknown; slowestCallMs?: number; sentCallMs?: number } =
      'result' in how ? { result: how.result, conflicts, secrets, kept } : { error: how.error, conflicts, secrets, kept };
    if (slowestCallMs !== undefined) e.slowestCallMs = slowestCallMs;
    if (sentCallMs !== undefined) e.sentCallMs = sentCallMs;
    return e as AttemptEnd;
  };
  try {
    const result = await campaign.op.apply({
      operation: campaign.spec.operation,
      target: a.target,
      send: (req) =>
        send(deps, a, req, sent, (ms, answered) => {
          sentCallMs = Math.max(sentCallMs ?? 0, ms);
          if (answered) slowestCallMs = Math.max(slowestCallMs ?? 0, ms);
        }),
      verify: campaign.spec.verify,
      captureUndo,
      earlier,
      // The operation calls this only when the target does not show an earlier run's write
      // (`earlier`) as landed: this run's pre-image replaces it.
      keep: async (preImage) => {
        if (!captureUndo) return;
        await deps.scripts.keepUndo(campaign.id, a.targetKey, JSON.stringify(preImage));
        kept = preImage;
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
    return end({ result });
  } catch (error) {
    // A dry run makes the reads (and the checks and patching that follow them) and stops at
    // the first call that would change something: that target would be upgraded.
    if (error instanceof DryRunWrite && !a.signal.aborted) return end({ result: wouldWrite(campaign) });
    return end({ error });
  }
}

/** What a dry run that reached a write records: that target would be upgraded (or reverted). */
function wouldWrite(campaign: Campaign): ApplyResult {
  return { outcome: 'upgraded', reason: campaign.op.writeReason ?? 'UPGRADED' };
}

/**
 * One platform call. Held while the connection is paused, or until Redis has said it is not
 * paused within `pauseGateMs`; then the gate is asked again at the write itself, so a call that
 * waited meanwhile (a busy event loop, a socket being opened) is held, not sent.
 */
async function send(deps: ProcessorDeps, a: Attempt, req: HttpRequest, sent: { wrote: boolean }, took: (ms: number, answered: boolean) => void): Promise<HttpResponse> {
  const { campaign, signal, run } = a;
  const endpoint = endpointOf(campaign);
  if (campaign.spec.dryRun && req.method !== 'GET') throw new DryRunWrite();
  const { connection } = campaign;
  const gate = () => deps.pauses.open(connection);
  // Only an adaptive limit's figure moves under the runs holding its slots (a 429 cuts it): a
  // fixed limit's runs are all within it, and wait out the pause as they always did.
  const onPaused = campaign.adaptive ? () => (sent.wrote ? Promise.resolve() : giveBackIfOver(deps, a)) : undefined;
  await holdWhilePaused(deps, connection, signal, run, onPaused);
  return run.call(req.method, async () => {
    for (;;) {
      // From the send to the answer (or the error). Only the platform's own answers are latency
      // for the adaptive concurrency: a reset, a refused connection or a proxy's 5xx can come
      // back in 0 ms, and one such call would set the no-load latency to 0, every normal round
      // then reading as queued; a 429, a 503 or a timeout is an overload, not a latency.
      const sentAt = performance.now();
      try {
        if (req.method !== 'GET') sent.wrote = true;
        const res = await deps.http.send(endpoint, req, campaign.spec.connection.timeoutMs, signal, gate);
        took(performance.now() - sentAt, res.status < 500 && res.status !== 429);
        return res;
      } catch (err) {
        if (!(err instanceof NotSentError)) {
          took(performance.now() - sentAt, false);
          throw err;
        }
      }
      await holdWhilePaused(deps, connection, signal, run, onPaused);
    }
  });
}

async function holdWhilePaused(deps: ProcessorDeps, connection: string, signal: AbortSignalLike, run: TargetRun, onPaused?: () => Promise<void>): Promise<void> {
  const heldFrom = performance.now();
  try {
    await deps.pauses.clear(connection, signal, onPaused);
  } finally {
    run.heldSince(heldFrom);
  }
}

/**
 * A Retry-After pause holds this run's call, and the 429 that drew it cut its keys' adaptive
 * figures: were every run holding a slot to send at the pause's end, as many calls as the old
 * figure would leave at once and overload the platform again (a second 429, a second pause). A
 * run beyond a key's figure gives its target back instead (giveBack-1.lua), so dispatch admits
 * after the pause only up to the figure; the others keep their slots and send at the pause's end.
 */
async function giveBackIfOver(deps: ProcessorDeps, a: Attempt): Promise<void> {
  let r: Awaited<ReturnType<ProcessorDeps['scripts']['giveBack']>>;
  try {
    r = await deps.scripts.giveBack(a.job.holder, a.token);
  } catch (err) {
    // Redis could not be asked (a failover): the run keeps its target and waits the pause out,
    // as every run did before give-backs; failing the call would spend an attempt on nothing sent.
    deps.log.warn({ err: (err as Error).message, holder: a.job.holder }, 'could not ask whether to give the target back; waiting out the pause');
    return;
  }
  if (r !== 'kept') throw new GivenBack(r);
}

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
