/**
 * In-memory stand-in for Alloy Embedded, Conductor (Orkes), Tallyfy and Nected (and any platform
 * registered with `registerSandboxPlatform`), for tests, the demo and benchmarks: one node:http
 * server, strict like the real APIs, with seeded faults.
 *
 * Where the platform docs are silent, the sandbox decides (and clients must cope with the real
 * platform possibly differing):
 * - Alloy: 401 `{"message":"Unauthorized"}`, 403 forbidden, 404 `{"message":"not found"}`;
 *   the documented 400 (reinstall needed) is an empty `{}`; already-on-latest answers 200 upgraded.
 * - Conductor upgrade: 404 unknown execution, 409 not RUNNING/PAUSED, 400 name mismatch or unknown
 *   definition version; definition update: `overwrite` defaults to true (as documented), 409 when
 *   `overwrite=false` would replace an existing name+version; `newVersion=true` never conflicts.
 * - Tallyfy: Laravel order — 404/403 before 422 body validation; Accept must name application/json.
 * - Nected: a stale checksum gets `conflictStatus` (409 CONFLICT, or 400 CHECKSUM_MISMATCH).
 * - Faults act like a proxy in front of the platform: before auth, before any state change.
 *   Except `dropWriteRate`, which acts like the platform itself: it acknowledges a write (2xx,
 *   the usual answer) and then loses it, so only reading the target back shows it.
 *
 * To change a target behind Upshift's back (someone editing it by hand between a write and a later
 * read), `load()` (`POST /__sandbox/fixtures`) that one record with the change: a loaded record
 * replaces the one with the same lookup key (Alloy workflow+user, Conductor execution id or
 * definition name+version, Tallyfy org+run, Nected entity+branch) and leaves the others alone.
 * It counts as no client request: nothing in `stats()` moves.
 */
export { startSandbox, type Sandbox } from './server.js';
export { configIssue, configKeys, defaultConfig, SANDBOX_KEYS, type SandboxConfig, type SandboxKeys, type SandboxOptions } from './options.js';
export { registerSandboxPlatform, SANDBOX_PLATFORMS, type SandboxFixtures, type SandboxPlatformName } from './platforms.js';
export { compositeKey, type HandlerEnv, type Operation, type PlatformRequest, type Reply, type Route, type SandboxPlatform } from './http.js';
export type { SandboxCounters, SandboxStats } from './stats.js';
