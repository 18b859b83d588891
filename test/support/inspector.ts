import { WebSocket } from 'undici';

/** What a process holds after a full collection: what a leak raises, without V8's sawtooth. */
export interface RetainedMemory {
  /** Live JavaScript objects. */
  readonly heapUsedMb: number;
  /** Memory outside the heap that JavaScript objects hold (Buffers, ArrayBuffers, native handles). */
  readonly externalMb: number;
  readonly rssMb: number;
}

/** Rejects with `what` if `p` has not settled within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * The Chrome DevTools address of a process started with `--inspect=127.0.0.1:0`, which Node
 * prints on stderr as it starts. Pass `onStderr` to the spawn (it sees stderr as it comes);
 * `address()` resolves once the line was printed (its deadline runs from the call). stdout, where a worker says it is ready, is
 * another pipe: the address is waited for, not assumed to be there by then.
 */
export function inspectorAddress(deadlineMs = 30_000): { onStderr: (all: string) => void; address: () => Promise<string> } {
  let found: (url: string) => void = () => undefined;
  const printed = new Promise<string>((resolve) => (found = resolve));
  return {
    onStderr: (all) => {
      const url = /Debugger listening on (ws:\/\/\S+)/.exec(all)?.[1];
      if (url !== undefined) found(url);
    },
    address: () => within(printed, deadlineMs, `the process printed no inspector address within ${deadlineMs} ms`),
  };
}

/**
 * Forces a full garbage collection in the inspected process and reads its memory right after,
 * over the DevTools protocol (no hook in the product's code). A session is opened per reading and
 * closed after it, so the process runs unobserved between readings. A session that drops or
 * never answers fails the reading with why, instead of leaving the test to its own timeout.
 */
export async function retainedMemory(url: string, deadlineMs = 30_000): Promise<RetainedMemory> {
  const ws = new WebSocket(url);
  const pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  let failed: Error | undefined;
  let failOpen: (err: Error) => void = () => undefined;
  const fail = (err: Error): void => {
    failed ??= err;
    failOpen(failed);
    for (const p of pending.values()) p.reject(failed);
    pending.clear();
  };
  ws.addEventListener('close', () => fail(new Error(`the inspector at ${url} closed the session`)));
  ws.addEventListener('error', () => fail(new Error(`the inspector session at ${url} failed`)));
  ws.addEventListener('message', (ev) => {
    const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
    const p = msg.id === undefined ? undefined : pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id!);
    if (msg.error) p.reject(new Error(msg.error.message));
    else p.resolve(msg.result);
  });
  let nextId = 1;
  const call = (method: string, params: object = {}): Promise<unknown> =>
    new Promise((resolve, reject) => {
      if (failed) return reject(failed);
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  const read = async (): Promise<RetainedMemory> => {
    await new Promise<void>((resolve, reject) => {
      failOpen = reject;
      ws.addEventListener('open', () => resolve(), { once: true });
    });
    // Twice: objects with finalizers and weak references are freed by the second collection.
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    const r = (await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result: { value: string };
    };
    const m = JSON.parse(r.result.value) as { heapUsed: number; external: number; rss: number };
    const mb = (bytes: number): number => bytes / 1024 / 1024;
    return { heapUsedMb: mb(m.heapUsed), externalMb: mb(m.external), rssMb: mb(m.rss) };
  };
  try {
    return await within(read(), deadlineMs, `no memory reading from the inspector at ${url} within ${deadlineMs} ms`);
  } finally {
    ws.close();
  }
}
