export { buildApi, checkAuthConfig, NO_TOKEN_MESSAGE, type ApiOptions } from './server.js';
export { readLimitUsage, type LimitUsage, type LimitUsageReport } from './limits.js';
export { TOKEN_COOKIE } from './auth.js';
export type { ApiErrorBody, ApiErrorCode, ApiIssue } from './errors.js';
export { OUTCOME_FILTERS } from './schemas.js';
