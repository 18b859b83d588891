/**
 * What the CLI draws for people shows text from Redis (a campaign's name, state, pause reason,
 * reason codes) as text: control characters come out escaped (`\u001b`), so a hostile value
 * cannot move the cursor, clear the screen, retitle the window or forge lines. The only escape
 * sequences in a frame are the renderer's own (colours, redraw). CSV cells cannot break a line.
 */
import { describe, expect, it } from 'vitest';
import { renderFrame, renderPlainLine, renderSummary } from '../../src/cli/watch.js';
import { csvLine, type CampaignStatus, type ReportLine } from '../../src/shared/index.js';

const HOSTILE = {
  name: 'pwn\u001b]0;owned\u0007\u001b[2J\r\nforged line',
  state: 'running\u009b31m',
  operation: 'alloy.upgradeWorkflow\u007f',
  pausedReason: 'OPERATOR\u001b[1A',
  reason: 'SERVER_ERROR\u0085\u001b[K',
};

function status(over: Partial<CampaignStatus> = {}): CampaignStatus {
  return {
    id: 'onboarding-v3',
    state: HOSTILE.state,
    operation: HOSTILE.operation,
    name: HOSTILE.name,
    total: 10,
    upgraded: 2,
    skipped: 1,
    failed: 1,
    wouldUpgrade: 0,
    wouldSkip: 0,
    wouldFail: 0,
    dryRun: false,
    pending: 6,
    active: 0,
    retries: 0,
    conflicts: 0,
    reclaimed: 0,
    retryAfterWaits: 0,
    retryAfterWaitMs: 0,
    pausedReason: HOSTILE.pausedReason,
    cancelReason: undefined,
    undoCampaign: undefined,
    undoOf: undefined,
    undoError: undefined,
    rolloutStep: undefined,
    rolloutSteps: undefined,
    rolloutLimit: undefined,
    breach: undefined,
    createdAt: 1,
    updatedAt: 2,
    finishedAt: undefined,
    reasons: { [HOSTILE.reason]: 2 },
    ...over,
  };
}

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** The renderer's own sequences: SGR colours only (redraw codes are written outside the frame). */
const withoutOwnColours = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, '');

describe('terminal output escapes control characters from Redis', () => {
  it('a terminal frame, with and without colour', () => {
    for (const color of [false, true]) {
      for (const state of [HOSTILE.state, 'paused']) {
        const lines = renderFrame(status({ state }), { ratePerS: 1, etaMs: 6000 }, { columns: 400, color });
        for (const line of lines) expect(withoutOwnColours(line), JSON.stringify(line)).not.toMatch(CONTROL);
        const text = lines.join('\n');
        expect(text).toContain('pwn\\u001b]0;owned\\u0007\\u001b[2J\\u000d\\u000aforged line');
        expect(text).toContain('SERVER_ERROR\\u0085\\u001b[K 2');
        if (state === 'paused') expect(text).toContain('OPERATOR\\u001b[1A');
        else expect(text).toContain('running\\u009b31m');
      }
    }
  });

  it('a plain line and the closing summary', () => {
    const paused = status({ state: 'paused' });
    const plain = renderPlainLine(paused, { ratePerS: 1, etaMs: 6000 });
    expect(plain).not.toMatch(CONTROL);
    expect(plain).toContain('paused=OPERATOR\\u001b[1A');
    expect(plain).toContain('reasons=SERVER_ERROR\\u0085\\u001b[K:2');
    const summary = renderSummary(status({ finishedAt: 3 }));
    expect(summary).not.toMatch(CONTROL);
    expect(summary).toContain('running\\u009b31m');
  });
});

describe('CSV report cells', () => {
  const line = (error: string): ReportLine => ({
    target: 'u1',
    fields: {},
    outcome: 'failed',
    reason: 'SERVER_ERROR',
    attempts: 1,
    retryAfterWaits: 0,
    error,
    at: 5,
  });

  it.each([
    ['LF', 'a\nb'],
    ['CR', 'a\rb'],
    ['VT', 'a\u000bb'],
    ['FF', 'a\u000cb'],
    ['NEL', 'a\u0085b'],
    ['LINE SEPARATOR', 'a\u2028b'],
    ['PARAGRAPH SEPARATOR', 'a\u2029b'],
  ])('a cell with %s is quoted, so it cannot start a new record', (_name, error) => {
    expect(csvLine(line(error))).toBe(`u1,failed,SERVER_ERROR,1,"${error}",5`);
  });
});
