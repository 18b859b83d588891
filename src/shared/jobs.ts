/**
 * What a dispatched target's BullMQ job carries. Nothing secret. The job id is the holder, so
 * a job exists only for a target that holds its slots; BullMQ never sees a waiting target.
 */
export interface TargetJobData {
  /** campaign id */
  readonly c: string;
  /** holder: `<campaign id>.<n>`, one dispatch of one target (also the job id) */
  readonly h: string;
  /** the target's JSON, as validated at enqueue */
  readonly e: string;
}
