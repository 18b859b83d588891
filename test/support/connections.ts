import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { sandboxConnections, writeConnectionsFile } from '../../scripts/lib/connections.js';
import { parseConnections, type ConnectionRegistry } from '../../src/shared/index.js';
import { CREDENTIAL_ENV } from './fleet.js';

/**
 * Every credential variable the tests name in a spec's `connection.credentialRef`: the sandbox
 * keys of `CREDENTIAL_ENV` plus the placeholder names of tests that never reach a platform.
 */
export const TEST_CREDENTIAL_REFS: readonly string[] = [
  ...Object.keys(CREDENTIAL_ENV),
  'K',
  'KEY',
  'ALLOY_KEY',
  'ALLOY_API_KEY',
  'CONDUCTOR_KEY',
  // Registered but never set: a worker without the credential (CREDENTIAL_MISSING).
  'UPSHIFT_TEST_UNSET_VAR',
];

/**
 * The connections registry of a test: each base URL the test uses, registered for every
 * credential variable of `TEST_CREDENTIAL_REFS` (plus `extraRefs`), with `privateNetwork: true`
 * (the sandbox listens on loopback). Entries are named after the variable for the first URL
 * and `<variable>-<i>` for the i-th after it (scripts/lib/connections.ts), so a spec may name
 * them or copy them as `{ baseUrl, credentialRef }`.
 */
export function testConnections(...baseUrls: string[]): ConnectionRegistry {
  return testConnectionsWith(baseUrls, []);
}

/** `testConnections` with credential variables of the test's own on top of the common ones. */
export function testConnectionsWith(baseUrls: readonly string[], extraRefs: readonly string[]): ConnectionRegistry {
  if (baseUrls.length === 0) throw new Error('testConnections: give the base URLs the test uses');
  return sandboxConnections(baseUrls, [...new Set([...TEST_CREDENTIAL_REFS, ...extraRefs])]);
}

/** A registry with no connection: for a test that enqueues nothing (every spec would be refused). */
export function noConnections(): ConnectionRegistry {
  return parseConnections({ connections: {} }, 'test connections');
}

/** Registry files written by this test process, by content: one file per registry, removed at exit. */
const files = new Map<string, string>();
process.once('exit', () => {
  for (const path of files.values()) rmSync(dirname(path), { recursive: true, force: true });
});

/** A registry as a file, for `UPSHIFT_CONNECTIONS` of a worker or CLI process the test starts. */
export function connectionsFile(registry: ConnectionRegistry): string {
  const text = JSON.stringify(registry);
  let path = files.get(text);
  if (path === undefined) files.set(text, (path = writeConnectionsFile(registry)));
  return path;
}

/** `testConnections(...baseUrls)` written to a file, for `UPSHIFT_CONNECTIONS`. */
export function testConnectionsFile(...baseUrls: string[]): string {
  return connectionsFile(testConnections(...baseUrls));
}
