/** The package's public API: what other services import. */
export { enqueueCampaign, readNdjsonTargets, type EnqueueOptions, type EnqueueResult } from './producer/index.js';
export { startWorker, type RunningWorker, type WorkerOptions } from './worker/index.js';
export {
  campaignKeys,
  eventsChannel,
  InputError,
  loadConfig,
  readStatus,
  REASONS,
  streamReport,
  validateSpec,
  type CampaignSpec,
  type CampaignStatus,
  type ReasonCode,
  type ReportLine,
} from './shared/index.js';
export { startSandbox, SANDBOX_KEYS, type Sandbox, type SandboxFixtures } from './sandbox/index.js';
