import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { Queue } from 'bullmq';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import {
  createApiMetrics,
  DEFAULTS,
  ERRORS,
  InputError,
  TARGET_QUEUE,
  type HttpClient,
  type Logger,
  type RedisClient,
  credentialValues,
  scrubError,
  type ConnectionRegistry,
} from '../../shared/index.js';
import { secretHeaderPaths } from '../../shared/index.js';
import { authGuard } from './auth.js';
import { registerCampaignRoutes } from './campaigns.js';
import { registerDashboard } from './dashboard.js';
import { apiErrorBody, errorAnswer } from './errors.js';
import { errorBody, health, jsonSchema } from './schemas.js';

export interface ApiOptions {
  /** The API's connection: commands, scripts, and Bull Board's queue. The caller owns (and closes) it. */
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly log: Logger;
  /** The bearer token every non-public route demands (`UPSHIFT_API_TOKEN`). */
  readonly apiToken: string | undefined;
  /** Serve without any authentication. Only with this set may `apiToken` be missing. */
  readonly insecureNoAuth?: boolean;
  /** How long an ended campaign's data is kept (default `DEFAULTS.retentionMs`). */
  readonly retentionMs?: number;
  /** Largest JSON body (default `DEFAULTS.apiBodyLimitBytes`); larger is 413. */
  readonly bodyLimitBytes?: number;
  /** Largest NDJSON body, counted as it streams (default `DEFAULTS.apiStreamLimitBytes`); larger is 413. */
  readonly streamLimitBytes?: number;
  /** The whole request must arrive within this (default `DEFAULTS.apiRequestTimeoutMs`); 0: no bound. */
  readonly requestTimeoutMs?: number;
  /** A connection idle this long is closed (default `DEFAULTS.apiConnectionTimeoutMs`); 0: never. */
  readonly connectionTimeoutMs?: number;
  /** `/readyz` answers 503 when Redis has not answered a PING within this (default `DEFAULTS.apiReadyTimeoutMs`). */
  readonly readyTimeoutMs?: number;
  /** HTTP client for discovery's search calls (one of its own when absent). */
  readonly http?: HttpClient;
  /** The operator's connections registry (`UPSHIFT_CONNECTIONS`). */
  readonly connections: ConnectionRegistry;
}

const MIN_TOKEN_CHARS = 16;

/** Why the API refuses to start without a token: the one-line fix, for the CLI and for library callers. */
const NO_TOKEN_FIX = `set it to a secret of at least ${MIN_TOKEN_CHARS} characters, or pass --insecure-no-auth to serve without authentication`;
export const NO_TOKEN_MESSAGE = `UPSHIFT_API_TOKEN is not set; ${NO_TOKEN_FIX}`;

/**
 * The token to demand, or undefined to serve without authentication (only when asked to).
 * Throws `InputError` naming UPSHIFT_API_TOKEN and --insecure-no-auth when there is no token
 * to demand, or when the token is too short to be a secret.
 */
export function checkAuthConfig(apiToken: string | undefined, insecureNoAuth: boolean): string | undefined {
  const token = apiToken === '' ? undefined : apiToken;
  if (token === undefined && !insecureNoAuth) throw new InputError('environment', 'UPSHIFT_API_TOKEN is not set', { fix: NO_TOKEN_FIX });
  if (token !== undefined && token.length < MIN_TOKEN_CHARS) {
    throw new InputError('environment', 'UPSHIFT_API_TOKEN is too short', { fix: `use a secret of at least ${MIN_TOKEN_CHARS} characters` });
  }
  return token;
}

/**
 * Headers and cookies that carry the token, and the platforms' credential headers (from the
 * platform table); scrubbed from every log line the API writes.
 */
const redactPaths = (): string[] => secretHeaderPaths(['req.', '', '*.'], ['authorization', 'cookie']);

/**
 * The HTTP producer API, the dashboard and Bull Board, as a Fastify instance that is ready but
 * not listening (tests call `inject`, `upshift serve` calls `listen`). Refuses (InputError)
 * without a token unless `insecureNoAuth` is set.
 */
export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const token = checkAuthConfig(opts.apiToken, opts.insecureNoAuth === true);
  const log = opts.log.child({ component: 'api' }, { redact: { paths: redactPaths(), censor: '[redacted]' } });
  if (token === undefined) log.warn('serving WITHOUT authentication (--insecure-no-auth): anyone who can reach this port controls campaigns');

  const { redis, prefix } = opts;
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // The dashboard polls every second; a line per request would drown everything else.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes ?? DEFAULTS.apiBodyLimitBytes,
    // Fastify bounds neither by default: a client that drips or stalls its upload would hold
    // its socket (and, for NDJSON, a campaign's staging) for as long as it liked.
    requestTimeout: opts.requestTimeoutMs ?? DEFAULTS.apiRequestTimeoutMs,
    connectionTimeout: opts.connectionTimeoutMs ?? DEFAULTS.apiConnectionTimeoutMs,
  });
  // Routes validate with zod (whose issues the answers carry); their JSON schemas only document,
  // and answers are sent as they are (a schema-driven serializer would drop undeclared fields).
  app.setValidatorCompiler(() => (data) => ({ value: data }));
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug({ method: request.method, url: request.routeOptions.url, statusCode: reply.statusCode }, 'request');
  });

  const secrets = credentialValues(opts.connections);
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { code, status, body } = errorAnswer(err);
    if (code === 'REDIS_UNAVAILABLE') request.log.warn({ err: err.message }, 'Redis unavailable');
    // Scrubbed like a report's error text: an answer a platform echoed into an error (discovery)
    // must not put a registered credential into the API's log.
    if (code === 'INTERNAL') request.log.error({ err: scrubError(`${err.name}: ${err.message}\n${err.stack ?? ''}`, secrets, 4000) }, 'request failed');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(ERRORS.ROUTE_NOT_FOUND.httpStatus).send(apiErrorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  if (token !== undefined) app.addHook('onRequest', authGuard(token));

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Upshift',
        version: '1',
        description:
          'Create, watch and control upgrade campaigns. Every route except /healthz and /readyz needs ' +
          '`Authorization: Bearer <UPSHIFT_API_TOKEN>` (or the dashboard\'s `upshift_token` cookie). See docs/API.md.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          cookie: { type: 'apiKey', in: 'cookie', name: 'upshift_token' },
        },
      },
      security: token === undefined ? [] : [{ bearer: [] }, { cookie: [] }],
      tags: [
        { name: 'campaigns', description: 'create, read and control campaigns' },
        { name: 'operations', description: 'health, readiness, metrics' },
      ],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  app.addSchema({ $id: 'ApiError', ...jsonSchema(errorBody) });
  // validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
  await app.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { validatorUrl: null } });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  const readyTimeoutMs = opts.readyTimeoutMs ?? DEFAULTS.apiReadyTimeoutMs;
  const publicOps = { tags: ['operations'], security: [], response: { 200: jsonSchema(health) } };
  app.get('/healthz', { config: { public: true }, schema: { ...publicOps, operationId: 'healthz', summary: 'The process is up' } }, async () => ({ status: 'ok' }));
  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: { ...publicOps, operationId: 'readyz', summary: 'Redis answers a PING', response: { 200: jsonSchema(health), 503: jsonSchema(health) } },
    },
    async (_request, reply) => {
      const ok = await pingWithin(redis, readyTimeoutMs);
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable' });
    },
  );

  const metrics = createApiMetrics({ redis, prefix });
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        operationId: 'metrics',
        summary: 'Prometheus metrics',
        response: { 200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );

  registerCampaignRoutes(app, {
    redis,
    prefix,
    retentionMs: opts.retentionMs ?? DEFAULTS.retentionMs,
    streamLimitBytes: opts.streamLimitBytes ?? DEFAULTS.apiStreamLimitBytes,
    connections: opts.connections,
    log,
    ...(opts.http === undefined ? {} : { http: opts.http }),
  });
  registerDashboard(app);

  // Bull Board shows BullMQ's side only (dispatched targets); pending ones live in the
  // scheduler's lists. Read-only: removing or retrying a job by hand would bypass the scheduler.
  const queue = new Queue(TARGET_QUEUE, { connection: redis, prefix });
  queue.on('error', (err) => log.debug({ err: err.message }, 'bull board queue error'));
  const board = new FastifyAdapter();
  board.setBasePath('/admin/queues');
  createBullBoard({ queues: [new BullMQAdapter(queue, { readOnlyMode: true })], serverAdapter: board });
  await app.register(board.registerPlugin(), { prefix: '/admin/queues' });
  app.addHook('onClose', async () => {
    await metrics.close();
    await queue.close();
  });

  await app.ready();
  return app;
}

/** True when Redis answers a PING within `timeoutMs`; a connection that is down answers false at once. */
async function pingWithin(redis: RedisClient, timeoutMs: number): Promise<boolean> {
  if (redis.status !== 'ready') return false;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([redis.ping().then(() => true, () => false), late]);
  } finally {
    clearTimeout(timer);
  }
}
