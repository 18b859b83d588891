import { createLogger, InputError, loadConnections, type UpshiftConfig } from '../../shared/index.js';
import { warnWindowClockOffset } from '../../shared/config.js';
import { startWorker } from '../../worker/index.js';
import { numberFlag, parseFlags } from '../flags.js';

export const help = `upshift worker [--concurrency N] [--lease-ms N] [--lock-duration-ms N] [--stalled-interval-ms N] [--shutdown-timeout-ms N]
               [--metrics-port N [--metrics-host H]] [--notify-concurrency N] [--notify-timeout-ms N] [--notify-backoff-ms N]

Processes targets until SIGTERM/SIGINT, then takes no new job, lets in-flight ones finish
(at most --shutdown-timeout-ms) and exits 0. --lease-ms (default 30000) is how long a slot
stays taken after its worker died; every worker of a deployment should use the same value.
--metrics-port serves GET /metrics (Prometheus) and GET /healthz (200 while the worker runs) on
that port, on --metrics-host (default 127.0.0.1, loopback only; 0.0.0.0 lets a scraper on another
host or container reach it; docs/OBSERVABILITY.md). OTEL_EXPORTER_OTLP_ENDPOINT=<collector URL>
turns on OpenTelemetry spans, one per target (service upshift-worker).
Workers also deliver the campaigns' signed webhooks (README, "Notifications"): at most
--notify-concurrency at once (default 8), each with a --notify-timeout-ms timeout (default
10000), a failed one tried again after --notify-backoff-ms (default 10000), doubled each time
up to an hour, for 24 h. The signing secrets are read from the variables the registry names.

Examples:
  ALLOY_API_KEY=... upshift worker --concurrency 50
  upshift worker --metrics-port 9464
  upshift worker --metrics-port 9464 --metrics-host 0.0.0.0
  REDIS_URL=rediss://:pw@redis.internal:6380 upshift worker --shutdown-timeout-ms 60000`;

export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values } = parseFlags(argv, {
    concurrency: { type: 'string' },
    'lease-ms': { type: 'string' },
    'lock-duration-ms': { type: 'string' },
    'stalled-interval-ms': { type: 'string' },
    'shutdown-timeout-ms': { type: 'string' },
    'metrics-port': { type: 'string' },
    'metrics-host': { type: 'string' },
    'notify-concurrency': { type: 'string' },
    'notify-timeout-ms': { type: 'string' },
    'notify-backoff-ms': { type: 'string' },
  });
  if (values.help) return void console.log(help);
  const metricsPort = numberFlag(values['metrics-port'], 'metrics-port', { min: 0, max: 65535 });
  const metricsHost = values['metrics-host'];
  if (metricsHost !== undefined) {
    if (typeof metricsHost !== 'string' || metricsHost.trim() === '') {
      throw new InputError('arguments', 'must be an address or host name', { field: '--metrics-host' });
    }
    if (metricsPort === undefined) throw new InputError('arguments', 'needs --metrics-port', { field: '--metrics-host' });
  }
  // Flags first: a mistyped flag is named as such even where no registry is set up yet.
  const flags = {
    concurrency: numberFlag(values.concurrency, 'concurrency', { min: 1 }),
    leaseMs: numberFlag(values['lease-ms'], 'lease-ms', { min: 300 }),
    lockDurationMs: numberFlag(values['lock-duration-ms'], 'lock-duration-ms', { min: 1000 }),
    stalledIntervalMs: numberFlag(values['stalled-interval-ms'], 'stalled-interval-ms', { min: 100 }),
    shutdownTimeoutMs: numberFlag(values['shutdown-timeout-ms'], 'shutdown-timeout-ms', { min: 0 }),
    metricsPort,
    metricsHost,
    notifyConcurrency: numberFlag(values['notify-concurrency'], 'notify-concurrency', { min: 1 }),
    notifyTimeoutMs: numberFlag(values['notify-timeout-ms'], 'notify-timeout-ms', { min: 100 }),
    notifyBackoffMs: numberFlag(values['notify-backoff-ms'], 'notify-backoff-ms', { min: 1000 }),
  };
  const connections = loadConnections();
  const log = createLogger(config.logLevel, 'upshift-worker');
  warnWindowClockOffset(config, log);
  const running = await startWorker(config, log, { connections, ...flags } as Parameters<typeof startWorker>[2]);
  log.info({ concurrency: running.worker.opts.concurrency }, 'worker started');
  // Announce readiness on stdout for supervisors and tests that wait for it.
  console.log('upshift worker ready');
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down: no new jobs, waiting for in-flight ones');
      running.close().then(resolve, (err) => {
        log.error({ err: (err as Error).message }, 'shutdown error');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log.info('worker stopped');
}
