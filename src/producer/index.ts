export { enqueueCampaign, enqueueSourced, type EnqueueOptions, type EnqueueResult, type SourcedTarget } from './enqueue.js';
export { readNdjsonTargets } from './ndjson.js';
export {
  cancelCampaign,
  listCampaigns,
  pauseCampaign,
  promoteCampaign,
  resumeCampaign,
  retryCampaign,
  type CampaignSummary,
  type ControlOptions,
} from './control.js';
export { undoCampaign, undoCampaignId, type UndoOptions, type UndoResult } from './undo.js';
export { readLimitUsage, type LimitUsage, type LimitUsageReport } from './api/limits.js';
// The HTTP API (`buildApi`) is imported from './api/index.js' by whoever serves it: Fastify,
// Swagger UI and Bull Board take ~0.3 s to load, which every other command would pay here.
