export { DEFAULTS, isClusterUrl, loadConfig, redactRedisUrl, type UpshiftConfig } from './config.js';
export { applyCeilings, checkNotifiers, NOTIFY_EVENTS, type NotifierEntry, type NotifyEvent, type NotifyRequest, CONNECTIONS_HOWTO, credentialValues, loadConnections, normaliseBaseUrl, parseConnections, registeredEntry, resolveConnection, type ConnectionEntry, type ConnectionInput, type ConnectionRegistry, type EffectiveLimit, type ResolvedConnection } from './connections.js';
export { classifyError, InputError, type InputErrorCode, UpshiftError, type Classification, type InputIssue } from './errors.js';
export { CatalogueError, catalogueMessage, ERRORS, errorCodeOf, EXIT, isErrorCode, type ApiErrorKind, type ErrorCode, type ErrorRow } from './error-catalogue.js';
export { HttpClient, NotSentError, buildUrl, errorFromResponse, isSuccess, parseJson, parseRetryAfterMs, type HttpRequest, type HttpResponse, type SendGate } from './http.js';
export { campaignOfHolder, decodeJob, encodeJob, jobOfPick, type TargetJob, type TargetJobData } from './jobs.js';
export { campaignIndexKey, campaignKeys, eventsChannel, schedulerKeys, TARGET_QUEUE, type CampaignKeys } from './keys.js';
export { compileLimits, concurrencyCeiling, connectionId, isAdaptive, LimitKeyError, MAX_LIMITS, type LimitSpec, type ResolvedLimit } from './limits.js';
export { createLogger, secretHeaderPaths, type Logger } from './logger.js';
export { OPERATIONS, operationFor, PLATFORMS, platforms, registerPlatform, secretHeaders, type ApplyContext, type OperationModule, type OperationType, type PlatformAdapter, type PlatformName, type Target } from './operations/index.js';
export { baseOperationType, encodeCarry, isUndoType, UNDO_FIELD, UNDO_PREFIX, type UndoCarry } from './operations/undo.js';
export { DRY_RUN_OUTCOME, PAUSE_REASONS, REASONS, isReasonCode, type DryRunOutcome, type RecordedOutcome, type Outcome, type PauseReason, type ReasonCode, type ReasonInfo } from './reasons.js';
export { connectRedis, createRedis, RedisUnavailableError, redisTimeMs, type RedisClient } from './redis.js';
export { loadScripts, ScriptError, type CallSample, type ClaimResult, type ControlAction, type DispatchResult, type FinishedRun, type FinishRun, type NotifyClaim, type NotifyOutcome, type Pick, type Scripts } from './scripts/index.js';
export {
  EVENT_ID_HEADER,
  readNotifications,
  readNotificationPage,
  SIGNATURE_HEADER,
  signatureHeader,
  signPayload,
  verifySignature,
  type DeliveryStatus,
  type NotificationDelivery,
} from './notifications.js';
export { CAMPAIGN_ID, cohortOf, isCohortStep, parseSpec, parseTargetLine, rolloutLimits, rolloutPlan, type PlannedStep, specJsonSchema, validateSpec, validateTarget, type CampaignSpec, type DiscoverSpec, type RolloutSpec } from './spec.js';
export { archiveRecords, flushOutbox, parseMarker, readRecordJson, scanRecords, type Marker, type MarkedRecord, type OutboxRecord } from './records.js';
export { csvHeader, csvLine, REPORT_OUTCOMES, streamReport, type OutcomeRecord, type ReportLine } from './report.js';
export { redactValues, scrubError } from './scrub.js';
export { LightSignal, type AbortSignalLike } from './signal.js';
export { readStatus, type CampaignStatus, type RolloutStepStatus } from './status.js';
export { createApiMetrics, createServedMetrics, FleetGauges, type FleetGaugeOptions, type MetricsEndpoint, type ServedMetrics, type ServedMetricsOptions } from './metrics.js';
export { flushTracing, initTracing, shutdownTracing, TRACER_NAME, tracingActive, upshiftTracer, withSpan, type ServiceName } from './tracing.js';
