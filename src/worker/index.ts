export { startWorker, type RunningWorker, type WorkerOptions } from './worker.js';
export { serveMetrics, WorkerMetrics, type MetricsServer, type TargetRun, type WorkerMetricsOptions } from './metrics/index.js';
