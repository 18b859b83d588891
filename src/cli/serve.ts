import { connectRedis, createLogger, createRedis, DEFAULTS, loadConnections, type UpshiftConfig } from '../shared/index.js';
import { numberFlag, parseFlags } from './flags.js';

/**
 * `upshift serve`: the HTTP producer API, the dashboard and Bull Board on one port, until
 * SIGTERM/SIGINT. Exit 2 (InputError) for bad flags or a missing UPSHIFT_API_TOKEN without
 * --insecure-no-auth; exit 1 when Redis cannot be reached or the port cannot be bound.
 */
export async function runServeCommand(argv: string[], config: UpshiftConfig, help: string): Promise<void> {
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
  const { buildApi, checkAuthConfig } = await import('../producer/api/index.js');
  // Refused before touching Redis: a missing token is a configuration error, not an outage.
  checkAuthConfig(config.apiToken, insecureNoAuth);
  const connections = loadConnections();

  const log = createLogger(config.logLevel, 'upshift-api');
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

