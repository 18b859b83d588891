import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStatus } from '../../src/shared/index.js';
import { DAYS, openInterval, type Window } from '../../src/shared/windows.js';
import { postCampaign, TOKEN, until, type TestApi } from '../api/support.js';
import { openDashboard, type OpenDashboard } from '../support/dashboard.js';
import { setupDeployment } from '../support/deployment.js';

// The page callback below runs in the browser; this project compiles without the DOM library.
declare const document: { querySelector(selector: string): { readonly textContent: string | null; readonly hidden: boolean } | null };

const CAMPAIGN = 'win-dash';
const card = `[data-campaign-id="${CAMPAIGN}"]`;

describe('dashboard: maintenance windows', () => {
  const t = setupDeployment({ scope: 'all', sandbox: {}, worker: { concurrency: 2 }, credentials: true });
  let api: TestApi;
  let browser: Browser;
  let url: string;
  let dashboard: OpenDashboard | undefined;

  beforeAll(async () => {
    dashboard = await openDashboard(t.producer);
    ({ api, browser, url } = dashboard);
  });
  afterAll(async () => {
    await dashboard?.close();
  });

  it('shows how many targets wait for their window and when the next opens', async () => {
    // A window three days from today (UTC), on the real clock: every target waits.
    const day = DAYS[(new Date().getUTCDay() + 3) % 7]!;
    const windows: Window[] = [{ days: [day], from: '00:00', to: '01:00' }];
    t.sandbox.load({ tallyfy: { runs: ['r1', 'r2', 'r3'].map((id) => ({ orgId: 'org', id, name: 'old', summary: '', tags: [], folders: [] })) } });
    const created = await postCampaign(api.app, {
      id: CAMPAIGN,
      connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_TALLYFY_KEY', timeoutMs: 5000 },
      operation: { type: 'tallyfy.updateRun', orgId: 'org', changes: { name: 'new' } },
      schedule: { timezone: 'UTC', windows },
      targets: [{ runId: 'r1' }, { runId: 'r2' }, { runId: 'r3' }],
    });
    expect(created.statusCode).toBe(201);
    const s = (await until(() => readStatus(api.redis, api.prefix, CAMPAIGN), (v) => v?.waitingForWindow === 3, 'targets waiting'))!;
    expect(s.nextWindowAt).toBe(openInterval(windows, 'UTC', Date.now()).from);
    expect(s).toMatchObject({ pending: 3, active: 0, upgraded: 0 });

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'UTC', locale: 'en-GB' });
    const page = await context.newPage();
    await page.goto(url);
    await page.fill('#token', TOKEN);
    await page.click('#login button[type="submit"]');
    const line = page.locator(`${card} [data-field="window"]`);
    await line.filter({ hasText: /waiting/ }).waitFor();
    const opens = new Date(s.nextWindowAt!).toLocaleString('en-GB', { timeZone: 'UTC' });
    expect(await line.textContent()).toBe(`3 targets waiting for a maintenance window; next window opens ${opens}`);
    expect(await page.evaluate((sel) => document.querySelector(sel)!.hidden, `${card} [data-field="window"]`)).toBe(false);
    await context.close();
  });
});
