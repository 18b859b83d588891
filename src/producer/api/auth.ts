import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { apiErrorBody } from './errors.js';
import { ERRORS } from '../../shared/index.js';

/** Cookie the dashboard sets (from its own JS, so it cannot be HttpOnly; SameSite=Strict, Path=/). */
export const TOKEN_COOKIE = 'upshift_token';

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * Checks a presented token against the configured one in constant time. Both sides are hashed
 * first, so the comparison is always 32 bytes against 32 and neither the token's length nor its
 * content leaks through timing.
 */
export function tokenChecker(token: string): (presented: string | undefined) => boolean {
  const expected = sha256(token);
  return (presented) => {
    // Hash even when nothing was presented, so a missing token costs what a wrong one does.
    const same = timingSafeEqual(sha256(presented ?? ''), expected);
    return presented !== undefined && same;
  };
}

/** The token a request presents: `Authorization: Bearer <t>` first, else the dashboard's cookie. */
export function presentedToken(request: FastifyRequest): { token: string | undefined; via: 'header' | 'cookie' | 'none' } {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer[ \t]+(\S.*?)[ \t]*$/i.exec(header);
    return { token: m?.[1], via: 'header' };
  }
  const cookie = readCookie(request.headers.cookie, TOKEN_COOKIE);
  return cookie === undefined ? { token: undefined, via: 'none' } : { token: cookie, via: 'cookie' };
}

/** One cookie's value (percent-decoded, as the dashboard encodes it), or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const raw = part.slice(eq + 1).trim();
    try {
      return decodeURIComponent(raw);
    } catch {
      return raw;
    }
  }
  return undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The `onRequest` guard. Routes marked `config.public` (health, the dashboard's static shell)
 * pass; everything else, unknown URLs included, needs the token. A state-changing request
 * authenticated by the cookie must also come from this origin when the browser says where it
 * came from (SameSite=Strict already keeps the cookie off cross-site requests; this is the
 * second lock).
 */
export function authGuard(token: string): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const matches = tokenChecker(token);
  return async (request, reply) => {
    if ((request.routeOptions.config as { public?: boolean } | undefined)?.public === true) return;
    const { token: presented, via } = presentedToken(request);
    if (!matches(presented)) {
      const message = via === 'none' ? 'missing API token: send "Authorization: Bearer <UPSHIFT_API_TOKEN>"' : 'wrong API token';
      await reply.code(ERRORS.API_TOKEN_REFUSED.httpStatus).header('www-authenticate', 'Bearer realm="upshift"').send(apiErrorBody('API_TOKEN_REFUSED', message));
      return;
    }
    if (via === 'cookie' && !SAFE_METHODS.has(request.method) && !sameOrigin(request)) {
      await reply.code(ERRORS.CROSS_ORIGIN_REFUSED.httpStatus).send(apiErrorBody('CROSS_ORIGIN_REFUSED', ERRORS.CROSS_ORIGIN_REFUSED.message));
    }
  };
}

function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}
