import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { startTestApi, type TestApi } from '../api/support.js';

const CHROMIUM = '/usr/bin/chromium';

/** The API on a free loopback port, and Chromium to open its dashboard (the browser tests). */
export interface OpenDashboard {
  readonly api: TestApi;
  readonly browser: Browser;
  /** The dashboard's address. */
  readonly url: string;
  close(): Promise<void>;
}

export async function openDashboard(producer: Parameters<typeof startTestApi>[0]): Promise<OpenDashboard> {
  if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium)`);
  const api = await startTestApi(producer);
  await api.app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
  // --no-sandbox: Chromium's sandbox cannot start as root (CI containers).
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }).catch(async (err: unknown) => {
    await api.close();
    throw err;
  });
  return {
    api,
    browser,
    url,
    async close() {
      await browser.close();
      await api.close();
    },
  };
}
