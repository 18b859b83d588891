import { describe, expect, it, vi } from 'vitest';
import type { DispatchResult, FinishRun, Logger } from '../../src/shared/index.js';
import { Finisher } from '../../src/worker/finisher.js';

const run = (holder: string, nextToken?: string): FinishRun =>
  ({ holder, token: `t-${holder}`, campaignId: 'c', targetKey: holder, outcome: 'upgraded', reason: 'UPGRADED', recordJson: '{}', conflicts: 0, keptUndo: false, ...(nextToken ? { nextToken } : {}) }) as FinishRun;

const log = { warn: () => undefined } as unknown as Logger;

describe('Finisher', () => {
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
