import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, type Scripts } from '../../src/shared/index.js';
import { LeaseKeeper } from '../../src/worker/leases.js';

/**
 * The lease keeper's deadlines (src/worker/leases.ts) on a fake clock: a run whose lease cannot
 * be renewed is aborted before the lease could expire in Redis, a renewal moves the deadline, a
 * lost lease aborts at once. The deadlines share one timer, so these also check that it is armed
 * at the earliest deadline and moved by each renewal. What renew-1.lua does is tested against
 * Redis (test/integration/lua-scripts.test.ts).
 */
const log = createLogger('silent');
const LEASE_MS = 3000;
/** leases.ts cuts a run off min(1 s, a tenth of the lease) before the lease's end. */
const MARGIN_MS = 300;

type Renew = Scripts['renew'];

function keeper(renew: Renew): LeaseKeeper {
  return new LeaseKeeper({ renew } as unknown as Scripts, log, 'w1', 10, LEASE_MS);
}

describe('LeaseKeeper', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('aborts a run whose lease could not be renewed just before the lease ends, and not earlier', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    const k = keeper(async () => {
      throw new Error('redis unreachable');
    });
    const signal = k.hold('c.1', 't1', performance.now());
    await vi.advanceTimersByTimeAsync(LEASE_MS - MARGIN_MS - 1);
    expect(signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).message).toBe('lease lost');
    await k.leave().catch(() => undefined);
  });

  it('moves every deadline at a renewal, each run by its own, one timer for all', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    let failing = false;
    const k = keeper(async () => {
      if (failing) throw new Error('redis unreachable');
      return [];
    });
    const a = k.hold('c.1', 't1', performance.now());
    await vi.advanceTimersByTimeAsync(500);
    const b = k.hold('c.2', 't2', performance.now()); // its deadline is 500 ms after a's
    // The heartbeat (every third of the lease) renews both at 1000 ms; then Redis goes away.
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3 - 500);
    failing = true;
    // a's first deadline (2700) passes: renewed at 1000, it now ends at 1000 + 2700 = 3700.
    await vi.advanceTimersByTimeAsync(LEASE_MS - MARGIN_MS - LEASE_MS / 3 + 1);
    expect(a.aborted).toBe(false);
    expect(b.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3 - 2);
    expect([a.aborted, b.aborted]).toEqual([false, false]);
    await vi.advanceTimersByTimeAsync(1); // 3700: both were renewed at 1000, both end now
    expect([a.aborted, b.aborted]).toEqual([true, true]);
    await k.leave().catch(() => undefined);
  });

  it('aborts a run at once when the renewal says its lease is lost, and leaves the others running', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    const k = keeper(async (_ms, _w, _c, held) => held.filter(([h]) => h === 'c.2').map(([h]) => h));
    const a = k.hold('c.1', 't1', performance.now());
    const b = k.hold('c.2', 't2', performance.now());
    await k.renew();
    expect([a.aborted, b.aborted]).toEqual([false, true]);
    expect((b.reason as Error).message).toBe('lease lost');
    await k.leave();
  });

  it('does not abort a run that ended, nor one held again under a new token after its deadline', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    const k = keeper(async () => {
      throw new Error('redis unreachable');
    });
    const ended = k.hold('c.1', 't1', performance.now());
    k.drop('c.1', 't1');
    await vi.advanceTimersByTimeAsync(LEASE_MS);
    expect(ended.aborted).toBe(false);
    const again = k.hold('c.1', 't2', performance.now());
    await vi.advanceTimersByTimeAsync(LEASE_MS - MARGIN_MS - 1);
    expect(again.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(again.aborted).toBe(true);
    await k.leave().catch(() => undefined);
  });

  it("keeps a run held again under a new token when the earlier run of its holder ends late", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] });
    let failing = false;
    const renewed: string[][] = [];
    const k = keeper(async (_ms, _w, _c, held) => {
      if (failing) throw new Error('redis unreachable');
      renewed.push(held.map(([h, t]) => `${h}/${t}`));
      return [];
    });
    k.hold('c.1', 't1', performance.now());
    const again = k.hold('c.1', 't2', performance.now()); // requeued and claimed here again
    k.drop('c.1', 't1'); // the first run unwinds only now
    await vi.advanceTimersByTimeAsync(LEASE_MS / 3);
    expect(renewed.at(-1)).toEqual(['c.1/t2']);
    failing = true;
    await vi.advanceTimersByTimeAsync(LEASE_MS);
    expect(again.aborted).toBe(true);
    await k.leave().catch(() => undefined);
  });

  it('aborts every run past its deadline even when one abort listener throws', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'queueMicrotask'] });
    const k = keeper(async () => {
      throw new Error('redis unreachable');
    });
    const a = k.hold('c.1', 't1', performance.now());
    const b = k.hold('c.2', 't2', performance.now());
    const heard: string[] = [];
    a.addEventListener('abort', () => {
      throw new Error('listener failed');
    });
    a.addEventListener('abort', () => heard.push('a'));
    b.addEventListener('abort', () => heard.push('b'));
    const rethrown = new Promise<unknown>((resolve) => {
      vi.stubGlobal('queueMicrotask', (fn: () => void) => {
        try {
          fn();
        } catch (err) {
          resolve(err);
        }
      });
    });
    await vi.advanceTimersByTimeAsync(LEASE_MS);
    vi.unstubAllGlobals();
    expect([a.aborted, b.aborted]).toEqual([true, true]);
    expect(heard.sort()).toEqual(['a', 'b']);
    expect(((await rethrown) as Error).message).toBe('listener failed');
    await k.leave().catch(() => undefined);
  });

  it('aborts the runs still going when the worker leaves: nothing renews their leases any more', async () => {
    const k = keeper(async () => []);
    const a = k.hold('c.1', 't1', performance.now());
    await k.leave();
    expect(a.aborted).toBe(true);
    expect((a.reason as Error).message).toBe('worker leaving');
  });
});
