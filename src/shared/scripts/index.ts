import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RedisClient } from '../redis.js';
import { DEFAULTS, windowClockOffsetMs } from '../config.js';
import { campaignKeys, schedulerKeys } from '../keys.js';
import { CODES, codeName, type CodeName } from './codes.js';
import { renderScript, type RenderedScript } from './loader.js';
import type { ReasonCode, RecordedOutcome } from '../reasons.js';

/**
 * Typed wrappers over the Lua scripts beside this file. Each script is one atomic state
 * change, named `<name>-<numKeys>.lua`, with its KEYS, ARGV and return codes in its header. The
 * scheduler scripts derive their keys from the prefix (ARGV[1]) and share the helpers in
 * `includes/`, each pulled in by name (`-- @include "claim"`) as BullMQ's scripts pull in
 * `includes/*.lua`: resolved recursively, pasted once each, before the code that needs them
 * (loader.ts). Every script gets the return-code table (codes.ts) as `local CODES`; a script
 * that includes `caps` takes the loop bounds (DEFAULTS) as ARGV[2], passed here. Each declares
 * one key, the scheduler ring: a Redis Cluster client routes a call by its keys, and every key
 * the script touches shares the prefix's hash tag (see docs/SCALING.md), so the ring's node
 * holds them all. `archive-1.lua` is the exception: its one key is a campaign's records hash,
 * in the campaign's own slot, and it takes no prefix (docs/ARCHITECTURE.md, "Outcome records").
 * Negative return codes become errors here and nowhere else.
 */

const here = dirname(fileURLToPath(import.meta.url));

export class ScriptError extends Error {
  constructor(
    readonly script: string,
    readonly returnCode: number,
    /** The code's name in codes.ts: what callers test (`err.code === 'NO_SUCH_CAMPAIGN'`). */
    readonly code: CodeName | 'UNKNOWN_CODE',
    message: string,
  ) {
    super(`${script}: ${message} (${code})`);
    this.name = 'ScriptError';
  }
}

const SCRIPT_ERRORS: Record<string, Partial<Record<CodeName, string>>> = {
  commitCampaign: {
    NOT_STAGED: 'the staged targets are gone (the staging expired and was discarded); nothing was enqueued',
    STAGED_MISMATCH: 'the staged targets do not match what this producer wrote; nothing was enqueued',
  },
  stage: { ALREADY_COMMITTED: 'the campaign was committed by another producer meanwhile; nothing was added to it' },
  finish: {
    STATUS_GONE: "the campaign's status hash is missing (deleted or expired)",
  },
  finishMany: {
    STATUS_GONE: "the campaign's status hash is missing (deleted or expired)",
  },
  control: { NO_SUCH_CAMPAIGN: 'no such campaign' },
  cancelPending: { NO_SUCH_CAMPAIGN: 'no such campaign', WRONG_STATE: 'the campaign is not cancelled' },
  retryFailed: { NO_SUCH_CAMPAIGN: 'no such campaign', WRONG_STATE: 'a cancelled campaign cannot run again' },
  appendTargets: { NO_SUCH_CAMPAIGN: 'no such campaign', WRONG_STATE: 'the campaign is not discovering any more' },
  notifyEvent: { NO_SUCH_CAMPAIGN: 'no such campaign' },
};

function check(script: string, code: unknown): void {
  if (typeof code === 'number' && code < 0) {
    const name = codeName(code);
    throw new ScriptError(script, code, name ?? 'UNKNOWN_CODE', (name && SCRIPT_ERRORS[script]?.[name]) ?? 'unknown error');
  }
}

/** Script name -> file. The number of KEYS is read from the file name. */
const FILES = {
  commitCampaign: 'commitCampaign-1.lua',
  stage: 'stage-1.lua',
  dispatch: 'dispatch-1.lua',
  claim: 'claim-1.lua',
  renew: 'renew-1.lua',
  finishMany: 'finishMany-1.lua',
  retryLater: 'retryLater-1.lua',
  throttle: 'throttle-1.lua',
  giveBack: 'giveBack-1.lua',
  control: 'control-1.lua',
  cancelPending: 'cancelPending-1.lua',
  retryFailed: 'retryFailed-1.lua',
  appendTargets: 'appendTargets-1.lua',
  unoutbox: 'unoutbox-1.lua',
  wakeLegacyBlocked: 'wakeLegacyBlocked-1.lua',
  pauseOf: 'pauseOf-1.lua',
  notifyEvent: 'notifyEvent-1.lua',
  notifyClaim: 'notifyClaim-1.lua',
  notifyDone: 'notifyDone-1.lua',
  setWindows: 'setWindows-1.lua',
} as const;

/** Scripts on a campaign's own slot: their one key is the campaign's, and they take no prefix. */
const CAMPAIGN_FILES = {
  archive: 'archive-1.lua',
} as const;

/** The loops' bounds the `caps` include reads from ARGV[2] (includes/caps.lua). */
const CAPS = {
  wakeCampaignsPerSlot: DEFAULTS.wakeCampaignsPerSlot,
  wakeGroupsPerCampaign: DEFAULTS.wakeGroupsPerCampaign,
  reclaimBatch: DEFAULTS.reclaimBatch,
  wakeDueBatch: DEFAULTS.wakeDueBatch,
  dispatchLooksPerPick: DEFAULTS.dispatchLooksPerPick,
  dispatchExtraLooks: DEFAULTS.dispatchExtraLooks,
  windowRecheckMs: DEFAULTS.windowRecheckMs,
  adaptiveHoldRatio: DEFAULTS.adaptiveHoldRatio,
  adaptiveRiseRatio: DEFAULTS.adaptiveRiseRatio,
  adaptiveSureRiseRatio: DEFAULTS.adaptiveSureRiseRatio,
  adaptiveSlackMs: DEFAULTS.adaptiveSlackMs,
  adaptiveRoundMinCalls: DEFAULTS.adaptiveRoundMinCalls,
  adaptiveRiseDecreaseFactor: DEFAULTS.adaptiveRiseDecreaseFactor,
  adaptiveRiseDecreaseMin: DEFAULTS.adaptiveRiseDecreaseMin,
  adaptiveDecreaseFactor: DEFAULTS.adaptiveDecreaseFactor,
  adaptiveRetryAfterRestartFactor: DEFAULTS.adaptiveRetryAfterRestartFactor,
  adaptiveSlowStartFactor: DEFAULTS.adaptiveSlowStartFactor,
  adaptiveOverloadMargin: DEFAULTS.adaptiveOverloadMargin,
  adaptiveOverloadDriftRounds: DEFAULTS.adaptiveOverloadDriftRounds,
  adaptiveOverloadMemoryMs: DEFAULTS.adaptiveOverloadMemoryMs,
  adaptiveIdleMs: DEFAULTS.adaptiveIdleMs,
};

const rendered = new Map<string, RenderedScript>();
function source(file: string): RenderedScript {
  let r = rendered.get(file);
  if (!r) rendered.set(file, (r = renderScript(here, file)));
  return r;
}

type Raw = (...args: (string | number)[]) => Promise<unknown>;

/**
 * The command `defineCommand` added as `name`, bound to its connection. ioredis's types cannot
 * see commands made at run time; looking the one up here, and failing loudly when it is missing,
 * keeps them off the client types, where a connection without the scripts would type-check too.
 */
function definedCommand(redis: RedisClient, name: keyof typeof FILES | keyof typeof CAMPAIGN_FILES): Raw {
  const fn: unknown = Reflect.get(redis, name);
  if (typeof fn !== 'function') throw new Error(`no command "${name}" on this connection: loadScripts defines it`);
  return (...args) => Promise.resolve(fn.apply(redis, args));
}

export interface CommitResult {
  readonly created: boolean;
  readonly total: number;
}

export interface Pick {
  readonly holder: string;
  readonly entry: string;
}

export interface DispatchResult {
  /** Redis's clock when the script ran (ms). */
  readonly nowMs: number;
  /** When the next lease expiry, retry or delay falls due (Redis clock), or null. */
  readonly nextWakeMs: number | null;
  readonly reclaimed: number;
  readonly picks: Pick[];
  /** Maintenance-window zones whose stored interval has passed: the worker computes and stores the next (`setWindows`). */
  readonly staleWindows: readonly { readonly campaignId: string; readonly zone: string }[];
}

export type ClaimResult =
  | {
      readonly kind: 'claimed';
      readonly attemptsMade: number;
      readonly retryAfterWaits: number;
      readonly lastError: string | null;
      /** The pre-image (JSON) an earlier run of this target kept before its write: that write may have landed. */
      readonly keptUndo: string | undefined;
    }
  | { readonly kind: 'lost' | 'duplicate' | 'done' }
  | { readonly kind: 'paused'; readonly untilMs: number };

export type ControlAction = 'pause' | 'resume' | 'cancel' | 'promote';

/** A webhook delivery a worker took to send (notifyClaim-1.lua). */
export interface NotifyClaim {
  /** `<event id>|<notifier>`, the delivery's member of `<p>:sched:notify-due`. */
  readonly member: string;
  readonly eventId: string;
  readonly campaignId: string;
  readonly notifier: string;
  /** The event's body, sent and signed as is. */
  readonly body: string;
  /** Attempts made, this one included. */
  readonly attempts: number;
  readonly createdAt: number;
}

export type NotifyOutcome = 'delivered' | 'retry' | 'failed';

export interface Scripts {
  commitCampaign(a: {
    campaignId: string;
    specJson: string;
    operation: string;
    name: string;
    total: number;
    groups: number;
    channel: string;
    discovering?: boolean;
  }): Promise<CommitResult>;
  /** Adds a discovered page (`[targetKey, gid, targetJson]` triples); `ended` when discovery is over. */
  appendTargets(
    campaignId: string,
    nextStart: number,
    /** `page`, `pass-end` (this page ended a pass), or `stop:<why>` (discovery ends here). */
    mode: 'page' | 'pass-end' | `stop:${'MAX_TARGETS' | 'DEADLINE'}`,
    channel: string,
    triples: readonly (string | number)[],
  ): Promise<{ added: number; ended: boolean }>;
  /** Stages `[targetKey, gid, targetJson]` triples; returns how many were new to the campaign. */
  stage(campaignId: string, deadlineMs: number, triples: readonly (string | number)[]): Promise<number>;
  dispatch(maxPicks: number, leaseMs: number): Promise<DispatchResult>;
  claim(holder: string, token: string, leaseMs: number, targetKey: string, channel: string): Promise<ClaimResult>;
  /** Heartbeat; returns the holders whose lease is no longer this run's. concurrency 0 deregisters. */
  renew(leaseMs: number, workerId: string, concurrency: number, held: ReadonlyArray<readonly [string, string]>): Promise<string[]>;
  /**
   * Records, releases and dispatches for one run (`finishMany` with one run; its own pick first
   * in `picks`); `recorded` is false when the outcome was recorded before.
   */
  finish(a: {
    holder: string;
    token: string;
    campaignId: string;
    targetKey: string;
    outcome: RecordedOutcome;
    reason: ReasonCode;
    recordJson: string;
    channel: string;
    maxPicks: number;
    leaseMs: number;
    /** A run token: the first pick is claimed for this worker with it (its claim in `ownClaim`). */
    nextToken?: string;
    /** The run's checksum conflicts, counted in the status hash's `conflicts` in the same step. */
    conflicts?: number;
    /** A pre-image was kept in `:attempts` for this target (`keepUndo`): dropped in the same step. */
    keptUndo?: boolean;
    /** The run's call, for a campaign with an adaptive limit: its figures move in the same step. */
    call?: CallSample;
  }): Promise<DispatchResult & { readonly recorded: boolean; readonly seq: number; readonly ownClaim: ClaimResult | undefined }>;
  /**
   * `finish` for several runs in one call (group commit): each run recorded and released as
   * `finish` would, then one dispatch step whose picks go, claimed, to the runs that passed a
   * `nextToken` (in order); `picks` holds the ones no run took. A run whose campaign's status
   * hash is gone gets `error` (a ScriptError STATUS_GONE, as `finish` throws) and nothing else.
   */
  finishMany(
    runs: readonly FinishRun[],
    channel: string,
    maxPicks: number,
    leaseMs: number,
  ): Promise<DispatchResult & { readonly runs: readonly FinishedRun[] }>;
  /**
   * Stores `[targetKey, '<seq>|<record JSON>']` pairs in a campaign's records hash (its own
   * slot); a stored record with the same or a newer seq is kept. Returns how many were written.
   */
  archive(campaignId: string, pairs: readonly string[]): Promise<number>;
  /**
   * Drops archived records (by seq) from the outbox. Returns the expiry the records hash must
   * get (the campaign has ended and `expiryMs` is not it), else 0.
   */
  unoutbox(campaignId: string, expiryMs: number, seqs: readonly number[]): Promise<number>;
  /** Upgrade step: groups left in a pre-round-robin `blocked:<key>` set made ready again; returns how many. */
  wakeLegacyBlocked(keyValue: string): Promise<number>;
  /**
   * Keeps a target's pre-image (JSON) in `:attempts` before its write is sent, so a later run of
   * it (the write's answer lost to a timeout or a kill) keeps the pre-image, not what it reads
   * after a write that may have landed. A plain HSET: the run holds the target, and the claim
   * told it whether an earlier run kept one.
   */
  keepUndo(campaignId: string, targetKey: string, json: string): Promise<void>;
  /** `false` when the lease was lost meanwhile (the target is back in its group already). */
  retryLater(holder: string, token: string, targetKey: string, backoffMs: number, error: string, conflicts?: number, call?: CallSample): Promise<boolean>;
  /** `changed: false` when the action is not allowed in the campaign's current `state`. */
  control(campaignId: string, action: ControlAction, reason: string, channel: string): Promise<{ changed: boolean; state: string }>;
  /** Records up to `max` never-started targets of a cancelled campaign as skipped/CANCELLED. */
  cancelPending(campaignId: string, max: number, channel: string): Promise<number>;
  /** Puts failed targets (`[targetKey, gid, targetJson]` triples) back to run; returns how many. */
  retryFailed(campaignId: string, reason: string, channel: string, triples: readonly (string | number)[]): Promise<number>;
  /**
   * Records webhook event `event` of a campaign (once per campaign and event) for the notifiers
   * its spec asked; `true` when recorded now.
   */
  notifyEvent(campaignId: string, event: string, extra: Readonly<Record<string, unknown>>, channel: string): Promise<boolean>;
  /**
   * Takes up to `max` due webhook deliveries for `leaseMs`; `nextDueMs` (Redis clock) is when the
   * next one falls due. Also drops due deliveries whose record is gone and gives up (`gaveUp`)
   * those older than `maxAgeMs`, whatever their notifier; puts back by `senderSeenMs` those to a
   * notifier no worker that can send to it has looked for in that long.
   */
  notifyClaim(
    max: number,
    leaseMs: number,
    usable: readonly string[],
    opts?: { readonly maxAgeMs?: number; readonly senderSeenMs?: number },
  ): Promise<{ nowMs: number; nextDueMs: number | null; gaveUp: number; claims: NotifyClaim[] }>;
  /**
   * Ends attempt `attempt` (its claim's `attempts`) of a delivery; what became of the delivery
   * (`not-due`: another sender finished it, or has claimed a newer attempt: this result is stale).
   */
  notifyDone(member: string, attempt: number, outcome: NotifyOutcome, backoffMs: number, error: string, maxAgeMs: number): Promise<'delivered' | 'rescheduled' | 'gave-up' | 'not-due'>;
  /** Stores maintenance-window intervals (`[zone, '<from>|<until>', ...]`); false when the campaign has ended or is gone. */
  setWindows(campaignId: string, fields: readonly string[]): Promise<boolean>;
  /** Redis's clock and the connection's Retry-After pause end (paused while `untilMs > nowMs`). */
  pauseOf(connection: string): Promise<{ nowMs: number; untilMs: number }>;
  /**
   * A run of a campaign with an adaptive limit whose call is held by a Retry-After pause:
   * `given-back` when one of its keys holds more slots than its figure (the target went back to
   * its group, to wake at the pause's end), `kept` when it keeps its slots, `lost` when it no
   * longer holds the target. After `given-back` or `lost` the run must send nothing more.
   */
  giveBack(holder: string, token: string): Promise<'given-back' | 'kept' | 'lost'>;
  /** The pause end, or null when the lease was lost meanwhile. */
  throttle(holder: string, token: string, targetKey: string, waitMs: number, error: string, channel: string, conflicts?: number, call?: CallSample): Promise<number | null>;
}

/** One run's end, for `finishMany` (the fields of `finish` that are per run). */
export interface FinishRun {
  readonly holder: string;
  readonly token: string;
  readonly campaignId: string;
  readonly targetKey: string;
  readonly outcome: RecordedOutcome;
  readonly reason: ReasonCode;
  readonly recordJson: string;
  readonly nextToken?: string;
  readonly conflicts?: number;
  readonly keptUndo?: boolean;
  readonly call?: CallSample;
}

/** What `finishMany` did for one run: as `finish`'s answer, with the pick claimed for it. */
export type FinishedRun =
  | { readonly error: ScriptError }
  | { readonly recorded: boolean; readonly seq: number; readonly ownClaim: ClaimResult | undefined; readonly own: Pick | undefined };

/**
 * What a run tells the adaptive concurrency of its keys (includes/adaptive.lua), passed to the
 * script that ends the run: its slowest platform call and whether it was an overload answer
 * (429, 503, timeout).
 */
export interface CallSample {
  readonly ms: number;
  readonly overload: boolean;
}

const callArgs = (call: CallSample | undefined): [string, string] =>
  call === undefined ? ['', ''] : [String(Math.max(0, Math.round(call.ms))), call.overload ? '1' : ''];

/** claim-1.lua's output (also finishMany-1.lua's, for a target it claims for a run's worker). */
function claimResult(res: (number | string)[]): ClaimResult {
  const code = Number(res[0]);
  switch (code) {
    case CODES.CLAIMED:
      return {
        kind: 'claimed',
        attemptsMade: Number(res[1]),
        retryAfterWaits: Number(res[2]),
        lastError: res[3] === '' ? null : String(res[3]),
        keptUndo: res[4] === '' || res[4] === undefined ? undefined : String(res[4]),
      };
    case CODES.DUPLICATE:
      return { kind: 'duplicate' };
    case CODES.PAUSED:
      return { kind: 'paused', untilMs: Number(res[1]) };
    case CODES.DONE:
      return { kind: 'done' };
    case CODES.LOST:
      return { kind: 'lost' };
    default:
      throw new Error(`claim: unexpected code ${code} (${codeName(code) ?? 'not in codes.ts'})`);
  }
}

function dispatchResult(res: (number | string)[]): DispatchResult {
  const picks: Pick[] = [];
  for (let i = 3; i < res.length; i += 2) picks.push({ holder: String(res[i]), entry: String(res[i + 1]) });
  const next = Number(res[1]);
  const [reclaimed, ...stale] = String(res[2]).split('\n');
  const staleWindows = stale.map((s) => {
    const tab = s.lastIndexOf('\t');
    return { campaignId: s.slice(0, tab), zone: s.slice(tab + 1) };
  });
  return { nowMs: Number(res[0]), nextWakeMs: next < 0 ? null : next, reclaimed: Number(reclaimed), picks, staleWindows };
}

/** Registers the scripts on a connection (EVALSHA with a transparent EVAL fallback). */
export function loadScripts(redis: RedisClient, prefix: string): Scripts {
  for (const [name, file] of [...Object.entries(FILES), ...Object.entries(CAMPAIGN_FILES)]) {
    if (name in redis) continue;
    redis.defineCommand(name, { lua: source(file).lua, numberOfKeys: Number(/-(\d+)\.lua$/.exec(file)![1]) });
  }
  const anchor = schedulerKeys(prefix).ring;
  // Read when the scripts are loaded, so a test can set the window clock per deployment.
  const CAPS_JSON = JSON.stringify({ ...CAPS, windowClockOffsetMs: windowClockOffsetMs() });
  const cmd = (name: keyof typeof FILES): Raw => {
    const fn = definedCommand(redis, name);
    const head = source(FILES[name]).includes.has('caps') ? [prefix, CAPS_JSON] : [prefix];
    return (...args) => fn(anchor, ...head, ...args);
  };
  const commit = cmd('commitCampaign');
  const stage = cmd('stage');
  const dispatch = cmd('dispatch');
  const claim = cmd('claim');
  const renew = cmd('renew');
  const finishMany = cmd('finishMany');
  const retryLater = cmd('retryLater');
  const throttle = cmd('throttle');
  const giveBack = cmd('giveBack');
  const control = cmd('control');
  const cancelPending = cmd('cancelPending');
  const retryFailed = cmd('retryFailed');
  const appendTargets = cmd('appendTargets');
  const unoutbox = cmd('unoutbox');
  const wakeLegacyBlocked = cmd('wakeLegacyBlocked');
  const pauseOf = cmd('pauseOf');
  const notifyEvent = cmd('notifyEvent');
  const notifyClaim = cmd('notifyClaim');
  const notifyDone = cmd('notifyDone');
  const setWindows = cmd('setWindows');
  const archive = definedCommand(redis, 'archive');

  const scripts: Scripts = {
    async commitCampaign(a) {
      const res = await commit(a.campaignId, a.specJson, a.operation, a.name, a.total, a.groups, a.channel, a.discovering ? '1' : '0');
      check('commitCampaign', res);
      const [created, total] = res as [number, number];
      return { created: created === CODES.CREATED, total };
    },
    async stage(campaignId, deadlineMs, triples) {
      const res = await stage(campaignId, deadlineMs, ...triples);
      check('stage', res);
      return Number(res);
    },
    async dispatch(maxPicks, leaseMs) {
      return dispatchResult((await dispatch(maxPicks, leaseMs)) as (number | string)[]);
    },
    async claim(holder, token, leaseMs, targetKey, channel) {
      return claimResult((await claim(holder, token, leaseMs, targetKey, channel)) as (number | string)[]);
    },
    async renew(leaseMs, workerId, concurrency, held) {
      const res = (await renew(leaseMs, workerId, concurrency, ...held.flat())) as (number | string)[];
      return res.slice(1).map(String);
    },
    async finish(a) {
      const { runs, ...step } = await scripts.finishMany([a], a.channel, a.maxPicks, a.leaseMs);
      const run = runs[0]!;
      if ('error' in run) throw run.error;
      return { ...step, picks: run.own === undefined ? step.picks : [run.own, ...step.picks], recorded: run.recorded, seq: run.seq, ownClaim: run.ownClaim };
    },
    async finishMany(runs, channel, maxPicks, leaseMs) {
      const args: (string | number)[] = [channel, maxPicks, leaseMs, runs.length];
      for (const r of runs) {
        const [ms, overload] = callArgs(r.call);
        args.push(r.holder, r.token, r.campaignId, r.targetKey, r.outcome, r.recordJson, r.reason, r.nextToken ?? '', r.conflicts ?? 0, r.keptUndo === true ? '1' : '', ms === '' ? '' : overload === '' ? ms : `${ms}|1`);
      }
      const res = (await finishMany(...args)) as (number | string)[];
      const n = Number(res[3]);
      const done: FinishedRun[] = [];
      for (let i = 0; i < n; i++) {
        const at = 4 + i * 8;
        const seq = Number(res[at]);
        if (seq < 0) {
          try {
            check('finishMany', seq);
          } catch (error) {
            done.push({ error: error as ScriptError });
          }
          continue;
        }
        const claimed = res[at + 1] !== CODES.NOT_CLAIMED;
        done.push({
          recorded: seq > 0,
          seq,
          ownClaim: claimed ? claimResult(res.slice(at + 1, at + 6)) : undefined,
          own: claimed ? { holder: String(res[at + 6]), entry: String(res[at + 7]) } : undefined,
        });
      }
      // The step's own fields and its leftover picks, in dispatch-1.lua's layout.
      return { ...dispatchResult([res[0]!, res[1]!, res[2]!, ...res.slice(4 + n * 8)]), runs: done };
    },
    async archive(campaignId, pairs) {
      return Number(await archive(campaignKeys(prefix, campaignId).records, ...pairs));
    },
    async unoutbox(campaignId, expiryMs, seqs) {
      return Number(await unoutbox(campaignId, expiryMs, ...seqs));
    },
    async wakeLegacyBlocked(keyValue) {
      return Number(await wakeLegacyBlocked(keyValue));
    },
    async keepUndo(campaignId, targetKey, json) {
      await redis.hset(campaignKeys(prefix, campaignId).attempts, `u:${targetKey}`, json);
    },
    async retryLater(holder, token, targetKey, backoffMs, error, conflicts = 0, call) {
      return (await retryLater(holder, token, targetKey, backoffMs, error, conflicts, ...callArgs(call))) === CODES.PARKED;
    },
    async control(campaignId, action, reason, channel) {
      const res = await control(campaignId, action, reason, channel);
      check('control', res);
      const [code, state] = res as [number, string];
      return { changed: code === CODES.CHANGED, state };
    },
    async cancelPending(campaignId, max, channel) {
      const res = await cancelPending(campaignId, max, channel);
      check('cancelPending', res);
      return res as number;
    },
    async appendTargets(campaignId, nextStart, mode, channel, triples) {
      const res = await appendTargets(campaignId, nextStart, mode, channel, ...triples);
      check('appendTargets', res);
      const [added, ended] = res as [number, number];
      return { added, ended: ended === 1 };
    },
    async retryFailed(campaignId, reason, channel, triples) {
      const res = await retryFailed(campaignId, reason, channel, ...triples);
      check('retryFailed', res);
      return res as number;
    },
    async notifyEvent(campaignId, event, extra, channel) {
      const res = await notifyEvent(campaignId, event, JSON.stringify(extra), channel);
      check('notifyEvent', res);
      return res === CODES.RECORDED;
    },
    async notifyClaim(max, leaseMs, usable, opts = {}) {
      const maxAgeMs = opts.maxAgeMs ?? DEFAULTS.notifyMaxAgeMs;
      const senderSeenMs = opts.senderSeenMs ?? DEFAULTS.notifySenderSeenMs;
      const res = (await notifyClaim(max, leaseMs, usable.join(','), maxAgeMs, senderSeenMs)) as (number | string)[];
      const claims: NotifyClaim[] = [];
      for (let i = 3; i < res.length; i += 4) {
        const member = String(res[i]);
        const bar = member.lastIndexOf('|');
        const eventId = member.slice(0, bar);
        claims.push({
          member,
          eventId,
          campaignId: eventId.slice(0, eventId.lastIndexOf(':')),
          notifier: member.slice(bar + 1),
          body: String(res[i + 1]),
          attempts: Number(res[i + 2]),
          createdAt: Number(res[i + 3]),
        });
      }
      const next = Number(res[1]);
      return { nowMs: Number(res[0]), nextDueMs: next < 0 ? null : next, gaveUp: Number(res[2]), claims };
    },
    async notifyDone(member, attempt, outcome, backoffMs, error, maxAgeMs) {
      const code = Number(await notifyDone(member, outcome, Math.max(0, Math.round(backoffMs)), error, maxAgeMs, attempt));
      return code === CODES.DELIVERED ? 'delivered' : code === CODES.RESCHEDULED ? 'rescheduled' : code === CODES.GAVE_UP ? 'gave-up' : 'not-due';
    },
    async setWindows(campaignId, fields) {
      return Number(await setWindows(campaignId, ...fields)) === CODES.STORED;
    },
    async pauseOf(connection) {
      const [nowMs, untilMs] = (await pauseOf(connection)) as [number, number];
      return { nowMs: Number(nowMs), untilMs: Number(untilMs) };
    },
    async giveBack(holder, token) {
      const code = Number(((await giveBack(holder, token)) as number[])[0]);
      return code === CODES.PAUSED ? 'given-back' : code === CODES.KEPT ? 'kept' : 'lost';
    },
    async throttle(holder, token, targetKey, waitMs, error, channel, conflicts = 0, call) {
      const res = (await throttle(holder, token, targetKey, waitMs, error, channel, conflicts, callArgs(call)[0])) as number[];
      return res[0] === CODES.THROTTLED ? res[1]! : null;
    },
  };
  return scripts;
}
