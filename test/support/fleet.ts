import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SANDBOX_KEYS, type SandboxFixtures } from '../../src/sandbox/index.js';

/** The variable holding a platform's sandbox key, as a spec's `credentialRef` names it. */
export const credentialRef = <N extends string>(platform: N): `UPSHIFT_TEST_${Uppercase<N>}_KEY` =>
  `UPSHIFT_TEST_${platform.toUpperCase() as Uppercase<N>}_KEY`;

type CredentialEnv = { readonly [N in keyof typeof SANDBOX_KEYS as ReturnType<typeof credentialRef<N>>]: string };

/** Environment variables holding the sandbox's keys (one per platform of the table). */
export const CREDENTIAL_ENV = Object.freeze(
  Object.fromEntries(Object.entries(SANDBOX_KEYS).map(([platform, key]) => [credentialRef(platform), key])),
) as CredentialEnv;

export function setCredentialEnv(): void {
  Object.assign(process.env, CREDENTIAL_ENV);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** `n` Alloy users of workflow `wf` on version 1 of 2. */
export function alloyFleet(n: number, wf = 'wf-1'): { fixtures: SandboxFixtures; targets: { userId: string }[] } {
  return {
    fixtures: {
      alloy: {
        workflows: { [wf]: { latestVersion: 2 } },
        installs: range(n).map((i) => ({ workflowId: wf, userId: `user-${i}`, version: 1 })),
      },
    },
    targets: range(n).map((i) => ({ userId: `user-${i}` })),
  };
}

/**
 * Conductor with workflow `flow` at versions 1 and 2 and `n` executions `<prefix>-<i>` running
 * version 1: what an upgradeExecution campaign to version 2 finds.
 */
export function conductorFleet(prefix: string, n: number): SandboxFixtures {
  return {
    conductor: {
      definitions: [1, 2].map((version) => ({ name: 'flow', version, tasks: [], schemaVersion: 2, timeoutSeconds: 0, ownerEmail: 'a@b.c' })),
      executions: range(n).map((i) => ({ workflowId: `${prefix}-${i}`, workflowName: 'flow', workflowVersion: 1, status: 'RUNNING' as const })),
    },
  };
}

export { nectedGraph } from '../../scripts/lib/fixtures.js';

const cliPath = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

/** A platform request as a worker wrote it to its socket (send-log.mjs). */
export interface SentRequest {
  /** `Date.now()` in the worker, right before the write. */
  readonly at: number;
  readonly method: string;
  /** Path and query, as sent. */
  readonly path: string;
  /** The body's first 1,000 characters ('' without one). */
  readonly body: string;
}

/**
 * Environment for `spawnWorker` that logs every platform request a worker writes, with the
 * time (send-log.mjs); `read()` returns what every worker so started has written so far.
 */
export function sendLog(): { env: Record<string, string>; read(): SentRequest[]; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'upshift-sends-'));
  const preload = new URL('./send-log.mjs', import.meta.url).href;
  return {
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim(), UPSHIFT_TEST_SEND_LOG: dir },
    read: () =>
      readdirSync(dir).flatMap((f) => {
        const text = readFileSync(join(dir, f), 'utf8');
        // A live worker may be halfway through writing a line (a read is not atomic against a
        // write): only what ends in a newline has been written whole.
        return text
          .slice(0, text.lastIndexOf('\n') + 1)
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as SentRequest);
      }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface WorkerProcess {
  readonly proc: ChildProcess;
  /** Resolves with the exit code (or signal) when the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/**
 * Starts `upshift worker` from the build (`npm test` builds first) and resolves once it
 * prints that it is ready.
 */
export async function spawnWorker(
  env: Record<string, string>,
  args: string[] = [],
  /** Sees stderr as it comes, before the worker is ready (what it logs while it waits). */
  onStderr?: (all: string) => void,
): Promise<WorkerProcess> {
  const proc = spawn(process.execPath, [cliPath, 'worker', ...args], {
    env: { ...process.env, ...CREDENTIAL_ENV, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    onStderr?.(err);
  });
  const exited = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('upshift worker ready')) resolve();
    });
    exited.then(({ code }) => reject(new Error(`worker exited (${code}) before it was ready: ${err}`)));
  });
  return { proc, exited, stderr: () => err };
}

/** Runs the built CLI (`npm test` builds first) to its end: exit code and everything it printed. */
export function runCli(args: string[], env: Record<string, string>, stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin!.end(stdin ?? '');
  });
}
