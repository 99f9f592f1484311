import fs from 'fs';
import { Browser, chromium } from 'playwright-core';
import { closeClients, RunningGateway, startGateways, token } from '../helpers/cluster';

// How the demo page logs in, in headless Chromium (Debian's /usr/bin/chromium, never a downloaded
// browser), against single in-process gateways: `/dev/*` exists only with DEV_LOGIN (404
// otherwise), so the page must work with and without it. DEV_LOGIN on: by name. Off, with
// AUTH_MODE=insecure: by name (the gateway takes `auth.userId`). Off, with JWTs: the page asks for a
// token, and a pasted one connects. demo.test.ts drives the whole cluster with DEV_LOGIN on.

jest.setTimeout(120000);

const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'];
const WAIT = { timeout: 15000 };

describe('the demo page logs in with and without DEV_LOGIN', () => {
  let browser: Browser;
  const stops: Array<() => Promise<void>> = [];
  const start = async (env: Record<string, string>): Promise<RunningGateway> => {
    const c = await startGateways(1, env);
    stops.push(c.stop);
    return c.gateways[0];
  };
  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (the suite never downloads a browser)`);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  }, 60000);
  afterAll(async () => {
    closeClients();
    await browser?.close();
    for (const s of stops) await s();
  });

  /** Opens the page, logs in as `name`; returns the page and what it showed (the app, or the token form). */
  async function logIn(g: RunningGateway, name: string) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${g.url}/`, { waitUntil: 'load' });
    await page.fill('#name', name);
    await page.press('#name', 'Enter');
    await Promise.race([
      page.locator('#app').waitFor({ state: 'visible', ...WAIT }),
      page.locator('#tokenForm').waitFor({ state: 'visible', ...WAIT }),
    ]);
    const shown = (await page.locator('#app').isVisible()) ? 'app' : 'token form';
    return { ctx, page, errors, shown };
  }

  test('DEV_LOGIN=true: by name', async () => {
    const g = await start({ DEV_LOGIN: 'true' });
    const { ctx, page, errors, shown } = await logIn(g, 'dev-alice');
    expect(shown).toBe('app');
    await page.locator('#status', { hasText: 'connected' }).waitFor(WAIT);
    expect(await page.textContent('#me')).toBe('dev-alice');
    expect(errors).toEqual([]);
    await ctx.close();
  });

  test('DEV_LOGIN off, AUTH_MODE=insecure: by name', async () => {
    const g = await start({ AUTH_MODE: 'insecure' });
    const { ctx, page, errors, shown } = await logIn(g, 'insecure-bob');
    expect(shown).toBe('app');
    await page.locator('#status', { hasText: 'connected' }).waitFor(WAIT);
    expect(await page.textContent('#me')).toBe('insecure-bob');
    expect(errors).toEqual([]);
    await ctx.close();
  });

  test('DEV_LOGIN off, JWT: the page asks for a token, and a pasted token connects', async () => {
    const g = await start({});
    const { ctx, page, errors, shown } = await logIn(g, 'carol');
    expect(shown).toBe('token form');
    expect(await page.locator('#tokenHelp').isVisible()).toBe(true);
    expect(await page.locator('#app').isVisible()).toBe(false);
    await page.fill('#token', await token('carol'));
    await page.press('#token', 'Enter');
    await page.locator('#app').waitFor({ state: 'visible', ...WAIT });
    await page.locator('#status', { hasText: 'connected' }).waitFor(WAIT);
    expect(await page.textContent('#me')).toBe('carol');
    expect(errors).toEqual([]);
    await ctx.close();
  });
});
