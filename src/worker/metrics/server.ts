import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsEndpoint } from '../../shared/index.js';

export interface MetricsServer {
  /** The port bound (useful when 0 asked for a free one). */
  readonly port: number;
  close(): Promise<void>;
}

/** Where /metrics listens unless told otherwise: loopback, so nothing off the machine reads it. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/**
 * Serves `GET /metrics` and `GET /healthz` (200 while `healthy()`, else 503) on `host`: loopback
 * by default; `0.0.0.0` (or an interface's address) lets Prometheus in another container scrape
 * it. node:http is enough for two routes.
 */
export async function serveMetrics(
  endpoint: MetricsEndpoint,
  port: number,
  healthy: () => boolean,
  host: string = DEFAULT_METRICS_HOST,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(ok ? 'ok\n' : 'not running\n');
      return;
    }
    if (path === '/metrics') {
      endpoint.render().then(
        (text) => res.writeHead(200, { 'content-type': endpoint.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('GET /metrics or /healthz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection would otherwise hold the close open.
        server.closeAllConnections();
      }),
  };
}
