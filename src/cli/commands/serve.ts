import { connectRedis, createLogger, createRedis, DEFAULTS, loadConnections, type UpshiftConfig } from '../../shared/index.js';
import { warnWindowClockOffset } from '../../shared/config.js';
import { numberFlag, parseFlags } from '../flags.js';

export const help = `upshift serve [--port N] [--host H] [--insecure-no-auth] [--body-limit-bytes N] [--stream-limit-bytes N]
              [--request-timeout-ms N] [--connection-timeout-ms N]

Serves the HTTP producer API (docs/API.md), the campaign dashboard at /, the OpenAPI document
at /openapi.json (rendered at /docs), Bull Board at /admin/queues, /metrics, /healthz and
/readyz, on --host (default 127.0.0.1) and --port (default 3000), until SIGTERM/SIGINT. Every
route but /healthz, /readyz and the dashboard's page needs "Authorization: Bearer
$UPSHIFT_API_TOKEN" (the dashboard asks for the token once and keeps it in a cookie). Without
UPSHIFT_API_TOKEN it refuses to start (exit 2) unless --insecure-no-auth is given.
--body-limit-bytes caps a JSON body (default 16 MiB), --stream-limit-bytes a streamed NDJSON
body (default 1 GiB); larger bodies, and NDJSON lines over 1 MiB, are refused with 413.
--request-timeout-ms bounds the time to receive a whole request (default 300000),
--connection-timeout-ms closes a connection idle that long (default 60000); 0 turns either off.
The environment can set all four: UPSHIFT_API_BODY_LIMIT_BYTES, UPSHIFT_API_STREAM_LIMIT_BYTES,
UPSHIFT_API_REQUEST_TIMEOUT_MS, UPSHIFT_API_CONNECTION_TIMEOUT_MS (a flag wins). Prints
"upshift api listening on <url>" on stdout once it listens.

Examples:
  UPSHIFT_API_TOKEN=$(openssl rand -hex 32) upshift serve --port 3000
  upshift serve --host 0.0.0.0 --port 8080
  curl -H "Authorization: Bearer $UPSHIFT_API_TOKEN" -H 'content-type: application/json' \\
    --data-binary @campaign.json localhost:3000/campaigns`;

/**
 * `upshift serve`: the HTTP producer API, the dashboard and Bull Board on one port, until
 * SIGTERM/SIGINT. Exit 2 (InputError) for bad flags or a missing UPSHIFT_API_TOKEN without
 * --insecure-no-auth; exit 1 when Redis cannot be reached or the port cannot be bound.
 */
export async function run(argv: string[], config: UpshiftConfig): Promise<void> {
  const { values } = parseFlags(
    argv,
    {
      port: { type: 'string' },
      host: { type: 'string' },
      'insecure-no-auth': { type: 'boolean' },
      'body-limit-bytes': { type: 'string' },
      'stream-limit-bytes': { type: 'string' },
      'request-timeout-ms': { type: 'string' },
      'connection-timeout-ms': { type: 'string' },
    },
    false,
  );
  if (values.help) return void console.log(help);
  const port = numberFlag(values.port, 'port', { min: 0, max: 65535 }) ?? DEFAULTS.apiPort;
  const host = typeof values.host === 'string' && values.host !== '' ? values.host : DEFAULTS.apiHost;
  // Flags win over the UPSHIFT_API_* variables (already in `config`, with the defaults).
  const bodyLimitBytes = numberFlag(values['body-limit-bytes'], 'body-limit-bytes', { min: 1024 }) ?? config.apiBodyLimitBytes;
  const streamLimitBytes = numberFlag(values['stream-limit-bytes'], 'stream-limit-bytes', { min: 1024 }) ?? config.apiStreamLimitBytes;
  const requestTimeoutMs = numberFlag(values['request-timeout-ms'], 'request-timeout-ms', { min: 0 }) ?? config.apiRequestTimeoutMs;
  const connectionTimeoutMs = numberFlag(values['connection-timeout-ms'], 'connection-timeout-ms', { min: 0 }) ?? config.apiConnectionTimeoutMs;
  const insecureNoAuth = values['insecure-no-auth'] === true;

  // Loaded here, not at the top: Fastify, Swagger UI and Bull Board take a while to load, and
  // only this command needs them.
  const { buildApi, checkAuthConfig } = await import('../../producer/api/index.js');
  // Refused before touching Redis: a missing token is a configuration error, not an outage.
  checkAuthConfig(config.apiToken, insecureNoAuth);
  const connections = loadConnections();

  const log = createLogger(config.logLevel, 'upshift-api');
  warnWindowClockOffset(config, log);
  // Requests fail (503) while Redis is down instead of queueing forever; /readyz says so too.
  const redis = createRedis(config.redisUrl, { maxRetriesPerRequest: 2 });
  redis.on('error', (err) => log.debug({ err: err.message }, 'redis connection error'));
  await connectRedis(redis, config.redisUrl, {
    retries: 10,
    onRetry: (n, err) => log.warn({ attempt: n, err: (err as Error).message }, 'waiting for Redis'),
  });
  try {
    const app = await buildApi({
      redis,
      prefix: config.prefix,
      log,
      apiToken: config.apiToken,
      insecureNoAuth,
      retentionMs: config.retentionMs,
      connections,
      bodyLimitBytes,
      streamLimitBytes,
      requestTimeoutMs,
      connectionTimeoutMs,
    });
    const address = await app.listen({ port, host });
    // Announce readiness on stdout for supervisors and tests that wait for it.
    console.log(`upshift api listening on ${address}`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, 'shutting down: finishing requests in flight');
        app.close().then(resolve, (err: unknown) => {
          log.error({ err: (err as Error).message }, 'shutdown error');
          resolve();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    log.info('api stopped');
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

