import type { Pick as SchedulerPick } from './scripts/index.js';

/**
 * A dispatched target, as the worker handles it. Nothing secret. The BullMQ job id is the
 * holder, so a job exists only for a target that holds its slots; BullMQ never sees a waiting
 * target. This file is the only one that knows how a job stores it.
 */
export interface TargetJob {
  readonly campaignId: string;
  /** `<campaign id>.<n>`: one dispatch of one target (also the job id). */
  readonly holder: string;
  /** The target's JSON, as validated at enqueue. */
  readonly targetJson: string;
}

/**
 * What a target's BullMQ job stores. Field names are one letter because every dispatched target
 * writes one, and jobs in Redis during an upgrade in place must still decode: never rename them.
 */
export interface TargetJobData {
  /** campaign id */
  readonly c: string;
  /** holder */
  readonly h: string;
  /** the target's JSON */
  readonly e: string;
}

/** The campaign a holder (`<campaign id>.<n>`) belongs to; campaign ids may contain dots. */
export function campaignOfHolder(holder: string): string {
  return holder.slice(0, holder.lastIndexOf('.'));
}

/** A scheduler pick (holder and target entry) as a job. */
export function jobOfPick(pick: SchedulerPick): TargetJob {
  return { campaignId: campaignOfHolder(pick.holder), holder: pick.holder, targetJson: pick.entry };
}

export function encodeJob(job: TargetJob): TargetJobData {
  return { c: job.campaignId, h: job.holder, e: job.targetJson };
}

export function decodeJob(data: TargetJobData): TargetJob {
  return { campaignId: data.c, holder: data.h, targetJson: data.e };
}
