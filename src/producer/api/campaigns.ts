import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  csvHeader,
  csvLine,
  catalogueMessage,
  DEFAULTS,
  InputError,
  readNotificationPage,
  readStatus,
  ScriptError,
  streamReport,
  validateSpec,
  type HttpClient,
  type RedisClient,
  campaignKeys,
  type ConnectionRegistry,
  type Logger,
} from '../../shared/index.js';
import { cancelCampaign, listCampaigns, pauseCampaign, promoteCampaign, resumeCampaign, retryCampaign } from '../control.js';
import { enqueueSourced, type EnqueueResult, type SourcedTarget } from '../enqueue.js';
import { undoCampaign } from '../undo.js';
import { LineTooLongError, readNdjsonTargets } from '../ndjson.js';
import { apiErrorBody, HttpError, inputErrorBody, notFound } from './errors.js';
import { readLimitUsage } from './limits.js';
import {
  campaignList,
  campaignSpecSchema,
  campaignStatus,
  controlResult,
  enqueueResult,
  idParams,
  jsonSchema,
  limitUsage,
  notificationList,
  parseInput,
  reportQuery,
  retryBody,
  undoBody,
  undoResult,
} from './schemas.js';

export interface CampaignRouteDeps {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly retentionMs: number;
  readonly streamLimitBytes: number;
  readonly http?: HttpClient;
  /** The operator's connections registry: a spec naming anything else is 400 CONNECTION_NOT_REGISTERED. */
  readonly connections: ConnectionRegistry;
  /** Where background discovery reports how it ended. */
  readonly log: Logger;
}

/** Named in errors about a streamed body's lines. */
const NDJSON_SOURCE = 'request body';
const NDJSON = 'application/x-ndjson';

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, { $ref: 'ApiError#' }]));
const tags = ['campaigns'];
const params = jsonSchema(idParams, 'input');

export function registerCampaignRoutes(app: FastifyInstance, deps: CampaignRouteDeps): void {
  const { redis, prefix } = deps;
  const opts = { redis, prefix };

  // The body stays a stream: targets are validated and staged as they arrive, never buffered.
  app.addContentTypeParser(NDJSON, (_request, payload, done) => done(null, payload));

  app.post(
    '/campaigns',
    {
      schema: {
        tags,
        operationId: 'createCampaign',
        summary: 'Create a campaign',
        description:
          'application/json: the campaign spec with inline `targets` (or a discovery query). ' +
          'application/x-ndjson: the spec on the first line, then one target per line, streamed. ' +
          'Invalid input is 400 naming every issue (and the line); a body over the limit, or an NDJSON line over ' +
          `${DEFAULTS.maxTargetLineBytes} bytes, is 413 (naming the line); nothing is enqueued then. ` +
          'The same spec under an existing id is 200 with `created: false`; another spec under it is 409.',
        body: {
          content: {
            'application/json': { schema: campaignSpecSchema() },
            [NDJSON]: { schema: { type: 'string', description: 'line 1: the spec (without targets); then one target object per line' } },
          },
        },
        response: {
          200: jsonSchema(enqueueResult),
          201: jsonSchema(enqueueResult),
          202: jsonSchema(enqueueResult),
          ...errors(400, 401, 409, 413, 415),
        },
      },
    },
    async (request, reply) => {
      const type = mediaType(request);
      let result: EnqueueResult;
      if (type === 'application/json') {
        // The body has arrived whole; what follows is the server's own work (a discovery pages
        // for as long as the fleet takes), which the idle connection timeout must not cut.
        keepConnectionOpen(request);
        result = await enqueue(() => validateSpec(request.body, 'spec', deps.connections), undefined, deps);
      } else if (type === NDJSON) result = await enqueueNdjson(request, reply, deps);
      else {
        const message = catalogueMessage('UNSUPPORTED_MEDIA_TYPE', { ndjson: NDJSON });
        throw new HttpError('UNSUPPORTED_MEDIA_TYPE', apiErrorBody('UNSUPPORTED_MEDIA_TYPE', message));
      }
      return reply.code(result.discovering ? 202 : result.created ? 201 : 200).send(result);
    },
  );

  app.get(
    '/campaigns',
    { schema: { tags, operationId: 'listCampaigns', summary: 'Every campaign still in Redis, newest first', response: { 200: jsonSchema(campaignList), ...errors(401) } } },
    async () => ({ campaigns: await listCampaigns(opts) }),
  );

  app.get(
    '/campaigns/:id',
    { schema: { tags, operationId: 'getCampaign', summary: "A campaign's status hash", params, response: { 200: jsonSchema(campaignStatus), ...errors(401, 404) } } },
    async (request) => {
      const { id } = campaignId(request);
      const status = await readStatus(redis, prefix, id);
      if (status === null) throw notFound(id);
      return status;
    },
  );

  app.get(
    '/campaigns/:id/limits',
    {
      schema: {
        tags,
        operationId: 'getCampaignLimits',
        summary: "Slots in use vs. concurrency on each of the campaign's limit key values",
        params,
        response: { 200: jsonSchema(limitUsage), ...errors(401, 404) },
      },
    },
    async (request) => {
      const { id } = campaignId(request);
      const usage = await readLimitUsage(redis, prefix, id);
      if (usage === null) throw notFound(id);
      return usage;
    },
  );

  app.get(
    '/campaigns/:id/notifications',
    {
      schema: {
        tags,
        operationId: 'getCampaignNotifications',
        summary: `The campaign's signed webhook deliveries: status, attempts, last error (upshift notifications); the newest ${DEFAULTS.notificationsListed}`,
        params,
        response: { 200: jsonSchema(notificationList), ...errors(401, 404) },
      },
    },
    async (request) => {
      const { id } = campaignId(request);
      if ((await readStatus(redis, prefix, id)) === null) throw notFound(id);
      return readNotificationPage(redis, prefix, id);
    },
  );

  app.get(
    '/campaigns/:id/report',
    {
      schema: {
        tags,
        operationId: 'getCampaignReport',
        summary: 'One record per target, streamed',
        params,
        querystring: jsonSchema(reportQuery, 'input'),
        response: {
          200: {
            description: 'NDJSON (one report line a line) or CSV (`target,outcome,reason,attempts,error,at`)',
            content: { [NDJSON]: { schema: { type: 'string' } }, 'text/csv': { schema: { type: 'string' } } },
          },
          ...errors(400, 401, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = campaignId(request);
      const query = parseInput(reportQuery, request.query, 'query');
      if ((await readStatus(redis, prefix, id)) === null) throw notFound(id);
      const csv = query.format === 'csv';
      reply.type(csv ? 'text/csv; charset=utf-8' : `${NDJSON}; charset=utf-8`);
      const lines = streamReport(redis, prefix, id, query.outcome === undefined ? {} : { outcome: query.outcome });
      return reply.send(Readable.from(batched(lines, csv)));
    },
  );

  const control = (action: 'pause' | 'resume' | 'promote', run: typeof pauseCampaign, summary: string) =>
    app.post(
      `/campaigns/:id/${action}`,
      { schema: { tags, operationId: `${action}Campaign`, summary, params, response: { 200: jsonSchema(controlResult), ...errors(401, 404, 409) } } },
      async (request) => {
        const { id } = campaignId(request);
        return { campaignId: id, state: await controlled(id, () => run(id, opts)) };
      },
    );
  control('pause', pauseCampaign, 'Pause: no new target starts once this answers; targets in flight finish');
  control('resume', resumeCampaign, 'Resume a paused campaign where it stopped');
  control('promote', promoteCampaign, 'Start the next step of a staged rollout waiting at a manual gate');

  app.post(
    '/campaigns/:id/cancel',
    {
      schema: {
        tags,
        operationId: 'cancelCampaign',
        summary: 'Cancel: every target not started is recorded skipped/CANCELLED; again finishes an interrupted cancel',
        params,
        response: { 200: jsonSchema(controlResult), ...errors(401, 404, 409) },
      },
    },
    async (request) => {
      const { id } = campaignId(request);
      const drained = await controlled(id, () => cancelCampaign(id, opts));
      return { campaignId: id, state: 'cancelled', drained };
    },
  );

  app.post(
    '/campaigns/:id/retry',
    {
      schema: {
        tags,
        operationId: 'retryCampaign',
        summary: "Run the campaign's failed targets again (only those of `reason`, when given)",
        params,
        body: { content: { 'application/json': { schema: jsonSchema(retryBody, 'input') } } },
        response: { 200: jsonSchema(controlResult), ...errors(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const { id } = campaignId(request);
      const { reason } = parseInput(retryBody, request.body, 'body');
      const retried = await controlled(id, () => retryCampaign(id, { ...opts, ...(reason === undefined ? {} : { reason }) }));
      const status = await readStatus(redis, prefix, id);
      return { campaignId: id, state: status?.state ?? 'unknown', retried };
    },
  );

  app.post(
    '/campaigns/:id/undo',
    {
      schema: {
        tags,
        operationId: 'undoCampaign',
        summary: 'Make the undo campaign `<id>-undo`: every target the campaign upgraded is put back as it was',
        description:
          'A campaign still running is cancelled first and its targets in flight are waited for ' +
          `(up to ${DEFAULTS.undoWaitMs} ms; longer is 409 \`UNDO_WAIT_TIMEOUT\`: POST again). ` +
          '201 when the undo campaign is made, 200 with `created: false` when it existed already (nothing new is enqueued). ' +
          'The undo campaign runs like any other: follow it with `GET /campaigns/{undo id}`. ' +
          '409 `UNDO_NOT_POSSIBLE` for an undo campaign or a dry run; 410 `CAMPAIGN_EXPIRED` when its data is gone.',
        params,
        body: { content: { 'application/json': { schema: jsonSchema(undoBody, 'input') } } },
        response: {
          200: jsonSchema(undoResult),
          201: jsonSchema(undoResult),
          ...errors(400, 401, 404, 409, 410),
        },
      },
    },
    async (request, reply) => {
      const { id } = campaignId(request);
      const { dryRun } = parseInput(undoBody, request.body, 'body');
      // Waiting for a cancelled campaign's targets in flight may outlast the idle timeout.
      keepConnectionOpen(request);
      const result = await controlled(id, () =>
        undoCampaign(id, { ...opts, connections: deps.connections, dryRun: dryRun === true }),
      );
      const { campaignId: undoId, undoOf, total, created, cancelledOriginal } = result;
      return reply.code(created ? 201 : 200).send({ campaignId: undoId, undoOf, total, created, cancelledOriginal });
    },
  );
}

/**
 * Lifts the idle timeout off the request's connection: for a route whose answer waits on the
 * server's own work (a discovery's paging, an undo waiting for targets in flight), not on the client.
 */
function keepConnectionOpen(request: FastifyRequest): void {
  const socket = request.raw.socket as { setTimeout?: (ms: number) => unknown } | undefined;
  if (typeof socket?.setTimeout === 'function') socket.setTimeout(0); // inject()'s mock socket has none
}

/** The path's campaign id; an id that cannot exist (wrong shape) is as unknown as a missing one. */
function campaignId(request: FastifyRequest): { id: string } {
  try {
    return parseInput(idParams, request.params, 'path');
  } catch {
    throw notFound((request.params as { id?: string }).id ?? '');
  }
}

function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * A script's refusal as the catalogue's `CAMPAIGN_STATE_CONFLICT` (409); the library's own
 * errors (an unknown id, a state that forbids the action) carry their codes already.
 */
async function controlled<T>(id: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof ScriptError && err.code === 'WRONG_STATE') {
      const message = `campaign "${id}": ${err.message}`;
      throw new HttpError('CAMPAIGN_STATE_CONFLICT', apiErrorBody('CAMPAIGN_STATE_CONFLICT', message));
    }
    throw err;
  }
}

/**
 * Validation (`spec`) errors are 400 and name the spec's NDJSON line; the library's refusals
 * after that carry their catalogue codes (an id taken by another spec `CAMPAIGN_EXISTS`, one
 * being staged by another producer `STAGING_IN_PROGRESS`, both 409) and are answered as such.
 */
async function enqueue(
  spec: () => ReturnType<typeof validateSpec>,
  sourced: AsyncIterable<SourcedTarget> | undefined,
  deps: CampaignRouteDeps,
  specLine?: number,
): Promise<EnqueueResult> {
  let validated;
  try {
    validated = spec();
  } catch (err) {
    if (err instanceof InputError) throw new HttpError(err.code, inputErrorBody(err, specLine === undefined ? {} : { line: specLine }));
    throw err;
  }
  return enqueueSourced(validated, sourced, {
    redis: deps.redis,
    prefix: deps.prefix,
    retentionMs: deps.retentionMs,
    source: NDJSON_SOURCE,
    connections: deps.connections,
    ...(deps.http === undefined ? {} : { http: deps.http }),
    // A discovery answers 202 once the campaign exists; it pages on in this process, and how
    // it ended is in the status hash (`discovering`, `discoverStopped`, `discoveryError`).
    discoveryInBackground: (paging, campaignId) => {
      paging.then(
        ({ total }) => deps.log.info({ campaignId, total }, 'discovery ended'),
        async (err: Error) => {
          // Scrubbed by discoverCampaign: no credential in this message. Recorded before it is
          // logged, so a reader that saw the log line finds the field.
          await deps.redis.hset(campaignKeys(deps.prefix, campaignId).status, 'discoveryError', err.message).catch(() => undefined);
          deps.log.warn({ campaignId, err: err.message }, 'discovery failed; POST the same spec again to resume');
        },
      );
    },
  });
}

class TooLarge extends Error {}

/**
 * Line 1 is the spec, the rest are targets, read as they stream in. A body over the limit, or a
 * line over `DEFAULTS.maxTargetLineBytes`, is 413 (and whatever was staged is discarded by the
 * library, as on any error). A body left unread after an error is not drained: the connection
 * closes after the answer.
 */
async function enqueueNdjson(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: CampaignRouteDeps,
): Promise<EnqueueResult> {
  const limit = deps.streamLimitBytes;
  const tooLarge = () =>
    new HttpError('PAYLOAD_TOO_LARGE', apiErrorBody('PAYLOAD_TOO_LARGE', catalogueMessage('PAYLOAD_TOO_LARGE', { limit })));
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    reply.header('connection', 'close');
    throw tooLarge();
  }
  const body = request.body as Readable;
  const lines = readNdjsonTargets(Readable.from(capped(body, limit)), NDJSON_SOURCE)[Symbol.asyncIterator]();
  try {
    const first = await lines.next();
    if (first.done) {
      throw new InputError(NDJSON_SOURCE, 'is empty: the first line must be the campaign spec', { line: 1 });
    }
    const specLine = first.value.line;
    const spec = () => validateSpec(first.value.value, 'spec', deps.connections);
    // Peek: a spec that carries its own targets (inline or discovery) must come alone.
    const second = await lines.next();
    const sourced = second.done ? undefined : rest(second.value, lines);
    return await enqueue(spec, sourced, deps, specLine);
  } catch (err) {
    reply.header('connection', 'close');
    if (err instanceof TooLarge || (err instanceof Error && err.cause instanceof TooLarge)) throw tooLarge();
    const long = err instanceof LineTooLongError ? err : err instanceof Error && err.cause instanceof LineTooLongError ? err.cause : undefined;
    if (long) {
      throw new HttpError('PAYLOAD_TOO_LARGE', apiErrorBody('PAYLOAD_TOO_LARGE', long.message, { source: long.source, ...(long.line === undefined ? {} : { line: long.line }) }));
    }
    throw err;
  } finally {
    await lines.return?.();
  }
}

async function* rest(first: SourcedTarget, more: AsyncIterator<SourcedTarget>): AsyncIterable<SourcedTarget> {
  yield first;
  for (let next = await more.next(); !next.done; next = await more.next()) yield next.value;
}

/**
 * The request's chunks, failing past `limit` bytes. The request is not destroyed when reading
 * stops early (that would close the socket before the error answer is written).
 */
async function* capped(body: Readable, limit: number): AsyncIterable<Buffer> {
  let bytes = 0;
  for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > limit) throw new TooLarge();
    yield chunk;
  }
}

/** Report lines joined into ~64 KiB writes. */
async function* batched(lines: AsyncIterable<Parameters<typeof csvLine>[0]>, csv: boolean): AsyncIterable<string> {
  let buf = csv ? csvHeader() + '\n' : '';
  for await (const line of lines) {
    buf += (csv ? csvLine(line) : JSON.stringify(line)) + '\n';
    if (buf.length >= 64 * 1024) {
      yield buf;
      buf = '';
    }
  }
  if (buf !== '') yield buf;
}
