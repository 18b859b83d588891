/** The package's public API: what other services import. */
export { enqueueCampaign, readNdjsonTargets, type EnqueueOptions, type EnqueueResult } from './producer/index.js';
export { startWorker, type RunningWorker, type WorkerOptions } from './worker/index.js';
export {
  campaignKeys,
  eventsChannel,
  InputError,
  loadConfig,
  readNotifications,
  readNotificationPage,
  readStatus,
  REASONS,
  registerPlatform,
  streamReport,
  validateSpec,
  verifySignature,
  type CampaignSpec,
  type NotificationDelivery,
  type CampaignStatus,
  type OperationModule,
  type PlatformAdapter,
  type ReasonCode,
  type ReportLine,
} from './shared/index.js';
export { registerSandboxPlatform, startSandbox, SANDBOX_KEYS, type Sandbox, type SandboxFixtures, type SandboxPlatform } from './sandbox/index.js';
