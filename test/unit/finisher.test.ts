import { describe, expect, it, vi } from 'vitest';
import { createLogger, type DispatchResult, type FinishedRun, type FinishRun } from '../../src/shared/index.js';
import { Finisher } from '../../src/worker/finisher.js';

/**
 * The finisher's own decisions (group commit of run ends, src/worker/finisher.ts), against a
 * stand-in for the script and the dispatcher: what reaches the dispatcher, and what a script
 * error does to the rest of a group. What finishMany-1.lua does is tested against Redis
 * (test/integration/lua-scripts.test.ts).
 */
const log = createLogger('silent');
type Step = DispatchResult & { readonly runs: readonly FinishedRun[] };
const run = (holder: string, nextToken?: string): FinishRun => ({ holder, token: `t-${holder}`, campaignId: 'c', targetKey: holder, outcome: 'upgraded', reason: 'UPGRADED', recordJson: '{}', ...(nextToken ? { nextToken } : {}) });
const recorded = (seq: number): FinishedRun => ({ recorded: true, seq, ownClaim: undefined, own: undefined });
const step = (runs: FinishedRun[], extra: Partial<DispatchResult> = {}): Step => ({ nowMs: 1, nextWakeMs: null, reclaimed: 0, picks: [], staleWindows: [], runs, ...extra });
const replyError = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' });

describe('Finisher', () => {
  it("hands the dispatcher a step with no picks left: its next due time and passed window zones are not dropped", async () => {
    const delivered: DispatchResult[] = [];
    const answer = step([recorded(1)], { nextWakeMs: 1, staleWindows: [{ campaignId: 'c', zone: 'Europe/Berlin' }] });
    const f = new Finisher({ finishMany: async () => answer }, { deliver: async (r) => void delivered.push(r) }, 'ch', 10, 1000, 64, log);
    await expect(f.finish(run('c.1'))).resolves.toMatchObject({ recorded: true, seq: 1 });
    expect(delivered).toEqual([answer]);
  });

  it('sends each run of a group again alone after a script error, so only the bad one fails', async () => {
    const calls: string[][] = [];
    let release!: () => void;
    const first = new Promise<void>((r) => (release = r));
    const scripts = {
      finishMany: async (runs: readonly FinishRun[]): Promise<Step> => {
        calls.push(runs.map((r) => r.holder));
        if (calls.length === 1) {
          await first; // the others end while this call is on its way: they go as one group
          return step([recorded(1)]);
        }
        if (runs.some((r) => r.holder === 'c.3')) throw replyError('ERR user_script: bad JSON');
        return step(runs.map((_, i) => recorded(10 + i)));
      },
    };
    const f = new Finisher(scripts, { deliver: async () => undefined }, 'ch', 10, 1000, 64, log);
    const ends = ['c.1', 'c.2', 'c.3', 'c.4'].map((h) => f.finish(run(h)).then((x) => ('error' in x ? 'error' : x.seq), (e: Error) => e.message));
    release();
    const results = await Promise.all(ends);
    expect(calls[1]).toEqual(['c.2', 'c.3', 'c.4']);
    expect(results).toEqual([1, 10, 'ERR user_script: bad JSON', 10]);
    expect(calls.slice(2).map((c) => c.length)).toEqual([1, 1, 1]);
  });

  it('sends with a group size or call count of zero as with one, rather than never or forever', async () => {
    let sent = 0;
    const f = new Finisher({ finishMany: async (runs) => ((sent += runs.length), step(runs.map(() => recorded(1)))) }, { deliver: async () => undefined }, 'ch', 10, 1000, 0, log, 0);
    await expect(Promise.all([f.finish(run('c.1')), f.finish(run('c.2'))])).resolves.toHaveLength(2);
    expect(sent).toBe(2);
  });

  it('lets a run with a claimed pick go on before the left-over picks reach BullMQ; the others wait for them', async () => {
    const deliveries: { r: DispatchResult; done: () => void }[] = [];
    const dispatcher = {
      deliver: (r: DispatchResult) => new Promise<void>((done) => deliveries.push({ r, done })),
    };
    const groups: string[][] = [];
    const claim = { kind: 'claimed' } as never;
    const scripts = {
      finishMany: async (runs: readonly FinishRun[]) => (groups.push(runs.map((r) => r.holder)), {
        nowMs: 0,
        nextWakeMs: null,
        reclaimed: 0,
        picks: [{ holder: 'left-over', entry: '{}' }],
        staleWindows: [],
        runs: runs.map((r) =>
          r.nextToken ? { recorded: true, seq: 1, ownClaim: claim, own: { holder: `next-${r.holder}`, entry: '{}' } } : { recorded: true, seq: 2, ownClaim: undefined, own: undefined },
        ),
      }),
    };
    const f = new Finisher(scripts, dispatcher, 'ch', 8, 1000, 64, log, 1);
    const settled: string[] = [];
    // `z` goes at once and holds the one call; `a` and `b` end meanwhile and go together next.
    const first = f.finish(run('z')).then(() => settled.push('z'));
    const continuing = f.finish(run('a', 'tok-a')).then((x) => settled.push(`a:${'own' in x ? x.own?.holder : ''}`));
    const returning = f.finish(run('b')).then(() => settled.push('b'));
    await vi.waitFor(() => expect(deliveries).toHaveLength(2));
    // One turn of the event loop for the resolved runs' callbacks.
    await new Promise(setImmediate);
    expect(groups).toEqual([['z'], ['a', 'b']]);
    // `a` went on while both groups' left-over picks are still on their way to BullMQ.
    expect(deliveries).toHaveLength(2);
    expect(settled).toEqual(['a:next-a']);
    deliveries[0]!.done();
    await first;
    deliveries[1]!.done();
    await Promise.all([continuing, returning]);
    expect(settled).toEqual(['a:next-a', 'z', 'b']);
  });
});
