import fs from 'fs';
import path from 'path';
import { Browser, BrowserContext, chromium, Page } from 'playwright-core';
import { Cluster, OUT_DIR, scrapeGateways, useCluster } from './cluster';
import { record, summary } from './results';

// The demo page (services/gateway/public/index.html, served at `/`) in headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core; never a downloaded browser): two
// browsers log in by name, join a room and chat through the balancer, once over websocket and
// once with "force long-polling"; a direct message to a user who is offline arrives when they log
// in. A screenshot goes to .run/e2e/demo.png. The balancer is make up's default: round-robin per
// request without an affinity cookie (the browser's long-polling requests are forwarded by the
// gateway they reach to the one holding their session).

jest.setTimeout(180000);

const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const WAIT = { timeout: 15000 };

/** Logs in by name (development login), or with a token when the gateway has no development login. */
async function login(c: Cluster, ctx: BrowserContext, name: string, polling: boolean): Promise<Page> {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  await page.goto(c.baseUrl + '/', { waitUntil: 'load' });
  if (polling) await page.check('#polling');
  await page.fill('#name', name);
  await page.press('#name', 'Enter');
  await Promise.race([
    page.locator('#app').waitFor({ state: 'visible', ...WAIT }),
    page.locator('#tokenForm').waitFor({ state: 'visible', ...WAIT }),
  ]);
  if (await page.locator('#tokenForm').isVisible()) {
    await page.fill('#token', await c.token(name));
    await page.press('#token', 'Enter');
  }
  await page.locator('#app').waitFor({ state: 'visible', ...WAIT });
  await page.locator('#status', { hasText: 'connected' }).waitFor(WAIT);
  return page;
}

async function join(page: Page, room: string): Promise<void> {
  await page.fill('#roomName', room);
  await page.click('#joinForm button');
  await page.locator(`#rooms li[data-room="${room}"]`).waitFor(WAIT);
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#msgText', text);
  await page.press('#msgText', 'Enter');
}

const seen = (page: Page, text: string) => page.locator('#log .msg', { hasText: text }).first().waitFor(WAIT);

const pageErrors: string[] = [];

describe('the demo page in headless Chromium through the balancer (round-robin, no affinity cookie)', () => {
  const cluster = useCluster({ name: 'demo', gateways: 3, workers: 1, sticky: false });
  let browser: Browser;
  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (the suite never downloads a browser)`);
    fs.mkdirSync(OUT_DIR, { recursive: true });
    // playwright gives the browser a fresh temporary --user-data-dir and removes it on close
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  }, 60000);
  afterAll(async () => {
    await browser?.close();
    summary(__filename);
  });

  test.each([
    ['websocket', false],
    ['long-polling (forced)', true],
  ])('two users chat in a room (%s)', async (label, polling) => {
    const c = cluster();
    const tag = Date.now().toString(36) + (polling ? 'p' : 'w');
    const room = `lobby-${tag}`;
    const t0 = Date.now();
    const ctxA = await browser.newContext({ viewport: { width: 1200, height: 640 } });
    const ctxB = await browser.newContext({ viewport: { width: 1200, height: 640 } });
    try {
      const alice = await login(c, ctxA, `alice-${tag}`, polling);
      const bob = await login(c, ctxB, `bob-${tag}`, polling);
      await join(alice, room);
      await join(bob, room);
      await say(alice, `hello bob (${label})`);
      await seen(bob, `hello bob (${label})`);
      await say(bob, `hi alice (${label})`);
      await seen(alice, `hi alice (${label})`);
      // each sees the other online (the page subscribes to the presence of the room's members)
      await alice.locator(`#people li[data-user="bob-${tag}"][data-status="online"]`).waitFor(WAIT);
      await bob.locator(`#people li[data-user="alice-${tag}"][data-status="online"]`).waitFor(WAIT);
      // the transport the page shows
      if (polling) {
        await alice.waitForTimeout(500);
        expect(await alice.textContent('#status')).toMatch(/^connected \(polling\)/);
      } else {
        await alice.locator('#status', { hasText: 'websocket' }).waitFor(WAIT);
      }
      const affinityCookies = [...(await ctxA.cookies()), ...(await ctxB.cookies())].filter((k) => k.name === 'RTGSRV').length;
      const forwarded = c.local ? await scrapeGateways(c, 'realtime_gateway_forwarded_requests_total', (l) => l.outcome === 'ok') : 'n/a';

      let dm = 'not tried';
      if (!polling) {
        // A direct message to a user who is offline waits in their inbox. (Carol has been here
        // before: a direct message to a user who never connected answers not_found.)
        const carol = `carol-${tag}`;
        const ctxFirst = await browser.newContext({ viewport: { width: 1200, height: 640 } });
        await login(c, ctxFirst, carol, false);
        await ctxFirst.close();
        await alice.fill('#dmTo', carol);
        await alice.fill('#dmText', 'are you there, carol?');
        await alice.press('#dmText', 'Enter');
        await seen(alice, `you → ${carol}`);
        await alice.screenshot({ path: path.join(OUT_DIR, 'demo.png'), fullPage: true });
        const ctxC = await browser.newContext({ viewport: { width: 1200, height: 640 } });
        try {
          const page = await login(c, ctxC, carol, false);
          await page.locator('#log .msg.dm', { hasText: 'are you there, carol?' }).waitFor(WAIT);
          expect(await page.locator('#log .msg.dm', { hasText: 'are you there, carol?' }).textContent()).toContain('(from your inbox)');
          await page.screenshot({ path: path.join(OUT_DIR, 'demo-inbox.png'), fullPage: true });
          dm = 'delivered from the inbox on login';
        } finally {
          await ctxC.close();
        }
      }
      record(__filename, `demo page: Chromium, ${label}`, {
        chatRoundTripMs: Date.now() - t0,
        affinityCookies,
        requestsForwardedSoFar: forwarded,
        directMessageToOfflineUser: dm,
        pageErrors: pageErrors.length,
      });
      expect(pageErrors).toEqual([]);
    } finally {
      await ctxA.close();
      await ctxB.close();
    }
  });
});
