/**
 * Every code a Lua script returns, in one table shared by both sides: the loader pastes it into
 * each script as `local CODES = { NAME = n, ... }` (scripts return `CODES.NAME`, never a bare
 * number), and index.ts decodes results through the same table, so a code cannot mean one thing
 * in Lua and another here. Each value is unique across the table, so a code read anywhere (a
 * log, redis-cli) names one outcome. Negative codes are refusals: index.ts turns them into a
 * `ScriptError` whose `code` is the name. Counts, seqs and times a script returns are data, not
 * codes. test/unit/script-codes.test.ts checks that names are unique, used and known.
 */
export const CODES = Object.freeze({
  // A run's claim on a dispatched holder (claim-1.lua; finishMany-1.lua for the next target).
  /** The holder is gone (finished, or its lease expired and the target was requeued). */
  LOST: 0,
  CLAIMED: 1,
  /** Another run holds the holder and its lease is live: this delivery is a duplicate. */
  DUPLICATE: 2,
  /**
   * The connection is paused by a Retry-After, or the campaign is paused or gated (also
   * giveBack-1.lua: a run held by the pause gave its target back).
   */
  PAUSED: 3,
  /** The target has an outcome already (or was just recorded skipped/CANCELLED). */
  DONE: 4,
  /** finishMany-1.lua claimed nothing for a run: no run token was given, or nothing was picked. */
  NOT_CLAIMED: 5,
  // Other scripts' results.
  /** control-1.lua: the campaign is in the state asked for. */
  CHANGED: 6,
  /** commitCampaign-1.lua: the campaign was created now / existed already. */
  CREATED: 7,
  EXISTED: 8,
  /** retryLater-1.lua: the target waits out its backoff. */
  PARKED: 9,
  /** throttle-1.lua: the target went back to its group and the connection is paused. */
  THROTTLED: 10,
  /** notifyDone-1.lua: the webhook delivery was delivered / is tried again later / was given up. */
  DELIVERED: 11,
  RESCHEDULED: 12,
  GAVE_UP: 13,
  /** notifyDone-1.lua: the delivery is no longer due here (another sender finished it, or its data expired). */
  NOT_DUE: 14,
  /** notifyEvent-1.lua: the event was recorded now / had been recorded before (or nobody asked for it). */
  RECORDED: 15,
  NOT_RECORDED: 16,
  /** setWindows-1.lua: the maintenance-window intervals were stored. */
  STORED: 17,
  /** giveBack-1.lua: the run held by a Retry-After pause keeps its slots and sends once the pause is over. */
  KEPT: 18,
  // Refusals.
  NO_SUCH_CAMPAIGN: -1,
  /** The campaign's state forbids the action (which state, and why, is in the message). */
  WRONG_STATE: -2,
  /** commitCampaign-1.lua: the staging expired and was discarded. */
  NOT_STAGED: -3,
  /** commitCampaign-1.lua: the staged lists hold another number of targets than the producer wrote. */
  STAGED_MISMATCH: -4,
  /** finishMany-1.lua (per run): the campaign's status hash is missing (deleted or expired). */
  STATUS_GONE: -5,
  /** stage-1.lua: the campaign was committed meanwhile (by another producer): nothing is added to it. */
  ALREADY_COMMITTED: -6,
} as const);

export type CodeName = keyof typeof CODES;

const NAMES = new Map<number, CodeName>(Object.entries(CODES).map(([name, code]) => [code, name as CodeName]));

/** The name of a code, or undefined for a number the table does not have. */
export function codeName(code: number): CodeName | undefined {
  return NAMES.get(code);
}

/** The table as the Lua prologue every script gets. */
export function luaCodes(): string {
  return `local CODES = { ${Object.entries(CODES)
    .map(([name, code]) => `${name} = ${code}`)
    .join(', ')} }\n`;
}
