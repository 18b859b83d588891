import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConnections, readStatus, type CampaignStatus } from '../../src/shared/index.js';
import { AUTH, postCampaign, TOKEN, until, type TestApi } from '../api/support.js';
import { openDashboard, type OpenDashboard } from '../support/dashboard.js';
import { setupDeployment } from '../support/deployment.js';
import { alloyFleet } from '../support/fleet.js';
import { waitForCompletion } from '../support/harness.js';

// The page callbacks below run in the browser; this project compiles without the DOM library,
// so the little of the DOM they touch is declared here (module scope: nothing leaks).
interface DomNode {
  readonly textContent: string | null;
  readonly dataset: Record<string, string | undefined>;
  readonly lastElementChild: DomNode | null;
  readonly style: { readonly width: string };
  querySelector(selector: string): DomNode | null;
  querySelectorAll(selector: string): Iterable<DomNode>;
}
declare const document: { querySelector(selector: string): DomNode | null; readonly body: DomNode };

/** Debian's chromium package (`.ci/run` installs it when missing). */
const CAMPAIGN = 'dash';
const card = `[data-campaign-id="${CAMPAIGN}"]`;
const fieldOf = (name: string) => `${card} [data-field="${name}"]`;

/** What the page shows for the campaign, parsed back into numbers. */
async function shown(page: Page) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel)!;
    const num = (name: string) => Number(el.querySelector(`[data-field="${name}"]`)!.textContent!.replace(/,/g, ''));
    const reasons: Record<string, number> = {};
    for (const tr of el.querySelectorAll('[data-field="reasons"] tr')) {
      reasons[tr.dataset.reason!] = Number(tr.lastElementChild!.textContent!.replace(/,/g, ''));
    }
    const width = (cls: string) => parseFloat(el.querySelector(`.bar .${cls}`)!.style.width);
    return {
      state: el.querySelector('[data-field="state"]')!.textContent,
      total: num('total'),
      upgraded: num('upgraded'),
      skipped: num('skipped'),
      failed: num('failed'),
      pending: num('pending'),
      active: num('active'),
      reasons,
      bar: { upgraded: width('upgraded'), skipped: width('skipped'), failed: width('failed') },
    };
  }, card);
}

const expected = (s: CampaignStatus) => ({
  state: s.state,
  total: s.total,
  upgraded: s.upgraded,
  skipped: s.skipped,
  failed: s.failed,
  pending: s.pending,
  active: s.active,
  reasons: s.reasons,
  // Segment widths in percent of the bar (the browser keeps 6 significant digits).
  bar: {
    upgraded: expect.closeTo((s.upgraded / s.total) * 100, 3),
    skipped: expect.closeTo((s.skipped / s.total) * 100, 3),
    failed: expect.closeTo((s.failed / s.total) * 100, 3),
  },
});

describe('dashboard in a real browser', () => {
  // Slow answers and one tenant key of 2 slots: the campaign runs long enough to watch (~20 targets/s).
  const t = setupDeployment({ scope: 'all', sandbox: { latencyMs: 100 }, worker: { concurrency: 4 }, credentials: true });
  let api: TestApi;
  let browser: Browser;
  let url: string;
  let dashboard: OpenDashboard | undefined;
  // A webhook receiver (200 to everything): the campaign's card lists its deliveries.
  let hook: Server;
  const HOOK_SECRET_REF = 'UPSHIFT_TEST_DASH_HOOK_SECRET';

  beforeAll(async () => {
    hook = createServer((req, res) => req.resume().on('end', () => res.writeHead(200).end()));
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    // The in-process worker reads the notifier's secret from process.env: set for this file only.
    vi.stubEnv(HOOK_SECRET_REF, 'whsec_dash_0123456789');
    const notifiers = { hook: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`, secretRef: HOOK_SECRET_REF, privateNetwork: true } };
    const registry = parseConnections({ connections: t.connections.connections, notifiers }, 'test registry');
    // One more worker, the one that can send to the receiver.
    await t.startWorker({ connections: registry, concurrency: 1 });
    dashboard = await openDashboard({ ...t.producer, connections: registry });
    ({ api, browser, url } = dashboard);
  });
  afterAll(async () => {
    await dashboard?.close();
    hook?.closeAllConnections();
    if (hook) await new Promise((resolve) => hook.close(resolve));
    vi.unstubAllEnvs();
  });

  it('shows a running campaign with the status hash figures; pause and resume from the page', async () => {
    const fleet = alloyFleet(400);
    t.sandbox.load(fleet.fixtures);
    // Unknown users first, a cohort step of their own: they fail NOT_FOUND early, so the reasons
    // table has a row to check, and the first step a failure ratio.
    const ghosts = [{ userId: 'ghost-1', tier: 'internal' }, { userId: 'ghost-2', tier: 'internal' }];
    const targets = [...ghosts, ...fleet.targets].map((t) => ({ ...t, tenant: 'acme' }));
    const created = await postCampaign(api.app, {
      id: CAMPAIGN,
      name: 'Dashboard <b>check</b>',
      connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 5000 },
      operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
      limits: [{ key: 'tenant-${target.tenant}', concurrency: 2 }],
      rollout: { steps: [{ where: { tier: 'internal' } }] },
      notify: [{ to: 'hook', events: ['paused', 'cancelled'] }],
      targets,
    });
    expect(created.statusCode).toBe(201);

    // A campaign without `notify`: the page never asks for its deliveries.
    const quiet = await postCampaign(api.app, {
      id: 'quiet',
      connection: { baseUrl: t.sandbox.url, credentialRef: 'UPSHIFT_TEST_ALLOY_KEY', timeoutMs: 5000 },
      operation: { type: 'alloy.upgradeWorkflow', workflowId: 'wf-1' },
      targets: fleet.targets.slice(0, 2),
    });
    expect(quiet.statusCode).toBe(201);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    const deliveryReads: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/notifications')) deliveryReads.push(new URL(r.url()).pathname);
    });
    page.on('console', (msg) => msg.type() === 'error' && !msg.text().includes('401') && problems.push(`console: ${msg.text()}`));

    // No token yet: the page asks for it, and shows no campaign.
    await page.goto(url);
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await page.locator(card).count()).toBe(0);
    await page.fill('#token', TOKEN);
    await page.click('#login button[type="submit"]');
    const cookie = (await context.cookies()).find((c) => c.name === 'upshift_token');
    expect(cookie).toMatchObject({ value: encodeURIComponent(TOKEN), sameSite: 'Strict', path: '/' });

    // Running: state, total, the full tenant key, a rate and an ETA.
    await page.locator(fieldOf('state')).filter({ hasText: /^running$/ }).waitFor();
    expect(await page.textContent(fieldOf('total'))).toBe('402');
    expect(await page.textContent(fieldOf('name'))).toBe('Dashboard <b>check</b>');
    // The tenant key's value, scoped to the campaign's connection.
    await page.locator(`${fieldOf('limits')} li[data-key="UPSHIFT_TEST_ALLOY_KEY/tenant-acme"]`).filter({ hasText: '2/2' }).waitFor();
    await page.locator(fieldOf('eta')).filter({ hasText: /^\d+(m \d+)?s$/ }).waitFor();
    expect(await page.textContent(fieldOf('rate'))).toMatch(/^\d+\.\d\/s$/);
    // Each rollout step with its cohort, counts and failure ratio; the one running marked.
    await page.locator(`${fieldOf('steps')} li[data-step="1"]`).filter({ hasText: /^the rest: 400 targets, upgraded \d+, skipped 0, failed 0 \(0\.0%\) ◀$/ }).waitFor();
    expect(await page.textContent(`${fieldOf('steps')} li[data-step="0"]`)).toBe('tier=internal: 2 targets, upgraded 0, skipped 0, failed 2 (100.0%)');
    // Done counts shown lie between what the status hash said before the page asked for them and
    // after it drew them.
    const before = (await readStatus(api.redis, api.prefix, CAMPAIGN))!;
    await page.waitForFunction((t) => Number(document.body.dataset.refreshStartedAt) > t, Date.now());
    const mid = await shown(page);
    const after = (await readStatus(api.redis, api.prefix, CAMPAIGN))!;
    expect(mid.upgraded).toBeGreaterThanOrEqual(before.upgraded);
    expect(mid.upgraded).toBeLessThanOrEqual(after.upgraded);
    expect(mid.upgraded).toBeLessThan(mid.total);
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/dashboard.png', fullPage: true });

    // Pause from the page: the state changes there; once in-flight targets drained the figures are exact.
    await page.click(`${card} button[data-action="pause"]`);
    await page.locator(fieldOf('state')).filter({ hasText: /^paused$/ }).waitFor();
    expect(await page.textContent(fieldOf('pausedReason'))).toBe('paused: OPERATOR');
    expect((await readStatus(api.redis, api.prefix, CAMPAIGN))!.state).toBe('paused');
    const drained = (await until(() => readStatus(api.redis, api.prefix, CAMPAIGN), (s) => s!.active === 0, 'in-flight targets drained'))!;
    expect(drained.pending).toBeGreaterThan(0);
    expect(drained.reasons).toEqual({ NOT_FOUND: 2 });
    await page.waitForFunction(
      ({ sel, n }) => document.querySelector(`${sel} [data-field="upgraded"]`)?.textContent?.replace(/,/g, '') === String(n),
      { sel: card, n: drained.upgraded },
    );
    expect(await shown(page)).toEqual(expected(drained));
    expect(await page.isDisabled(`${card} button[data-action="pause"]`)).toBe(true);
    expect(await page.isEnabled(`${card} button[data-action="resume"]`)).toBe(true);
    expect(await page.locator(`${fieldOf('limits')} li`).count()).toBe(0);

    // Resume from the page; then cancel (through the API) to end quickly and compare the final figures.
    await page.click(`${card} button[data-action="resume"]`);
    await page.locator(fieldOf('state')).filter({ hasText: /^running$/ }).waitFor();
    expect((await readStatus(api.redis, api.prefix, CAMPAIGN))!.state).toBe('running');
    expect((await api.app.inject({ method: 'POST', url: `/campaigns/${CAMPAIGN}/cancel`, headers: AUTH })).statusCode).toBe(200);
    const ended = await waitForCompletion(api.prefix, CAMPAIGN);
    await page.locator(fieldOf('state')).filter({ hasText: /^cancelled$/ }).waitFor();
    await page.waitForFunction(
      ({ sel, n }) => document.querySelector(`${sel} [data-field="skipped"]`)?.textContent?.replace(/,/g, '') === String(n),
      { sel: card, n: ended.skipped },
    );
    expect(await shown(page)).toEqual(expected(ended));
    expect(ended.reasons.CANCELLED).toBeGreaterThan(0);
    // The webhook deliveries of the pause and the cancel, newest first.
    await page.locator(fieldOf('webhookSummary')).filter({ hasText: /^2 delivered, 0 pending, 0 failed$/ }).waitFor();
    expect(await page.locator(`${fieldOf('deliveries')} li`).allTextContents()).toEqual(['cancelled → hook: delivered, 1 attempt', 'paused → hook: delivered, 1 attempt']);
    // Settled: two more refreshes read no delivery list (the status's count of changes stands).
    const reads = deliveryReads.length;
    for (let i = 0; i < 2; i++) {
      const last = await page.evaluate(() => Number(document.body.dataset.refreshedAt));
      await page.waitForFunction((prev) => Number(document.body.dataset.refreshedAt) > prev, last);
    }
    expect(deliveryReads.slice(reads)).toEqual([]);
    expect(deliveryReads.length).toBeGreaterThan(0);
    expect(deliveryReads.every((path) => path === `/campaigns/${CAMPAIGN}/notifications`)).toBe(true);
    expect(problems).toEqual([]);
    await context.close();
  });
});
