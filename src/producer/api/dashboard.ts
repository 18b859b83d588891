import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

/**
 * The dashboard's static shell: one HTML page, its script and its stylesheet, served without
 * authentication (they hold no data; every number comes from the API with the token). Read
 * once at start, so a build that forgot to copy them fails at once rather than on first view.
 */
const ASSETS: readonly { readonly url: string; readonly file: string; readonly type: string }[] = [
  { url: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { url: '/dashboard/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { url: '/dashboard/style.css', file: 'style.css', type: 'text/css; charset=utf-8' },
];

// The page loads nothing from elsewhere and runs no inline script, so campaign names or limit
// keys that carried markup could not run even if they were ever inserted as HTML.
const HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export function registerDashboard(app: FastifyInstance): void {
  for (const asset of ASSETS) {
    const body = readFileSync(new URL(`./dashboard/${asset.file}`, import.meta.url));
    app.get(asset.url, { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
      reply.headers(HEADERS).type(asset.type).send(body),
    );
  }
  // Browsers ask for it on every page; without this each visit logs a 401.
  app.get('/favicon.ico', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => reply.code(204).send());
}
