import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConnections, type ConnectionRegistry } from '../../src/shared/index.js';

/**
 * Connections registries for the sandbox, as the demo, the benchmarks and the tests use them:
 * every (base URL, credential variable) pair given, registered with `privateNetwork: true`
 * (the sandbox listens on loopback, which the egress guard refuses otherwise). Entries are
 * named `<variable>` for the first base URL and `<variable>-<i>` for the i-th after it, so a
 * spec may name them or copy them. `notifiers` (webhook receivers, registry `notifiers`) are
 * registered as given.
 */
export function sandboxConnections(
  baseUrls: string | readonly string[],
  credentialRefs: readonly string[],
  notifiers: Readonly<Record<string, unknown>> = {},
): ConnectionRegistry {
  const urls = typeof baseUrls === 'string' ? [baseUrls] : baseUrls;
  const connections: Record<string, unknown> = {};
  urls.forEach((baseUrl, i) => {
    for (const ref of credentialRefs) connections[i === 0 ? ref : `${ref}-${i}`] = { baseUrl, credentialRef: ref, privateNetwork: true };
  });
  return parseConnections({ connections, notifiers }, 'sandbox connections');
}

/** Writes a registry to a new temporary file, for `UPSHIFT_CONNECTIONS` of a child process. */
export function writeConnectionsFile(registry: ConnectionRegistry): string {
  const path = join(mkdtempSync(join(tmpdir(), 'upshift-connections-')), 'connections.json');
  writeFileSync(path, JSON.stringify(registry));
  return path;
}
