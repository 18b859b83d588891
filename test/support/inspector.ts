import { WebSocket } from 'undici';

/** What a process holds after a full collection: what a leak raises, without V8's sawtooth. */
export interface RetainedMemory {
  /** Live JavaScript objects. */
  readonly heapUsedMb: number;
  /** Memory outside the heap that JavaScript objects hold (Buffers, ArrayBuffers, native handles). */
  readonly externalMb: number;
  readonly rssMb: number;
}

/** The Chrome DevTools address a process started with `--inspect=127.0.0.1:0` printed on stderr. */
export function inspectorUrl(stderr: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
}

/**
 * Forces a full garbage collection in the inspected process and reads its memory right after,
 * over the DevTools protocol (no hook in the product's code). A session is opened per reading and
 * closed after it, so the process runs unobserved between readings.
 */
export async function retainedMemory(url: string, deadlineMs = 30_000): Promise<RetainedMemory> {
  const ws = new WebSocket(url);
  const pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>();
  // A session that drops or never answers fails the reading (and every call on its way) with why,
  // instead of leaving the test waiting for its own timeout.
  let failed: Error | undefined;
  const fail = (err: Error): void => {
    failed ??= err;
    for (const p of pending.values()) p.reject(failed);
    pending.clear();
  };
  const timer = setTimeout(() => {
    fail(new Error(`no memory reading from the inspector at ${url} within ${deadlineMs} ms`));
    ws.close();
  }, deadlineMs);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`cannot reach the inspector at ${url}`)), { once: true });
      ws.addEventListener('close', () => reject(failed ?? new Error(`the inspector at ${url} closed before the session opened`)), { once: true });
    });
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
    // Twice: objects with finalizers and weak references are freed by the second collection.
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    const r = (await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result: { value: string };
    };
    const m = JSON.parse(r.result.value) as { heapUsed: number; external: number; rss: number };
    const mb = (bytes: number): number => bytes / 1024 / 1024;
    return { heapUsedMb: mb(m.heapUsed), externalMb: mb(m.external), rssMb: mb(m.rss) };
  } finally {
    clearTimeout(timer);
    ws.close();
  }
}
