import { BrowserContext, Page, Route } from 'playwright-core';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import {
  chromiumOrSkip,
  ConsoleBrowser,
  ensureUiBuilt,
  openConsoleBrowser,
} from './admin-ui.helpers';

/*
 * The admin console when answers arrive out of order: a slow answer for a choice the operator
 * has already changed (the overview's window, the keys page's user filter) must not be drawn
 * over the answer for the current choice, and a page left while loading must stop. The browser
 * delays chosen admin API answers. Also: client-side checks that must hold in the browser.
 */

const executablePath = chromiumOrSkip();
const describeInBrowser = executablePath ? describe : describe.skip;

describeInBrowser('admin console robustness', () => {
  let gw: TestGateway;
  let context: BrowserContext;
  let page: Page;
  let password: string;
  let first: TestConsumer;
  let second: TestConsumer;
  let browser: ConsoleBrowser;
  /** Script errors and console errors (an invalid pattern attribute is one). */
  const pageProblems: string[] = [];

  /** Holds an answer until `release` is called, so the test decides the order. */
  const held = () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    return { release, released };
  };

  beforeAll(async () => {
    ensureUiBuilt();
    gw = await startGateway();
    ({ password } = await adminToken(gw));
    first = await newConsumer(gw);
    second = await newConsumer(gw);
    browser = await openConsoleBrowser(executablePath!, pageProblems);
    ({ context, page } = browser);
    await page.goto(`${gw.url}/admin/ui/`);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    await page.waitForLoadState('networkidle');
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('overview: an idle half hour is summarised as such', async () => {
    // This gateway has served no public traffic at all.
    const caption = page.locator('figure.chart figcaption');
    await caption.waitFor();
    expect(await caption.textContent()).toBe(
      '0 requests and 0 server errors in the last 30 minutes; busiest minute 0, this minute 0.',
    );
  });

  it('overview: with the traffic section unavailable, no traffic figure is shown', async () => {
    // The answer /admin/stats gives while Postgres is down: traffic null and named.
    await page.route('**/admin/stats?window_seconds=900', async (route: Route) => {
      const response = await route.fetch();
      const stats = await response.json();
      await route.fulfill({
        response,
        json: { ...stats, traffic: null, unavailable: ['traffic'] },
      });
    });
    const answered = page.waitForResponse('**/admin/stats?window_seconds=900');
    await page.getByLabel('Window').selectOption('900');
    await answered;
    const cards = page.getByRole('list', { name: 'Key numbers' });
    await page.getByText('Not available right now: traffic.').waitFor();
    const cache = (await cards.locator('li', { hasText: 'Cache hit rate' }).textContent()) ?? '';
    expect(cache).toMatch(/^Cache hit rate—all time/);
    expect(cache).not.toContain('answers from cache');
    await page.unroute('**/admin/stats?window_seconds=900');
    const back = page.waitForResponse('**/admin/stats?window_seconds=300');
    await page.getByLabel('Window').selectOption('300');
    await back;
  });

  it('overview: a slow answer for the previous window is not shown under the new one', async () => {
    const slow = held();
    // The 24-hour answer is held, and marked so it is recognisable if it is ever drawn.
    await page.route('**/admin/stats?window_seconds=86400', async (route: Route) => {
      await slow.released;
      const response = await route.fetch();
      const stats = await response.json();
      stats.traffic.requests = 987654;
      await route.fulfill({ response, json: stats });
    });
    const window = page.getByLabel('Window');
    const held24h = page.waitForRequest('**/admin/stats?window_seconds=86400');
    await window.selectOption('86400');
    await held24h;
    // The operator changes their mind before the 24-hour answer arrives.
    const fiveMinutes = page.waitForResponse('**/admin/stats?window_seconds=300');
    await window.selectOption('300');
    await fiveMinutes;
    const traffic = page
      .getByRole('list', { name: 'Key numbers' })
      .locator('li', { hasText: 'Requests / min' })
      .locator('.card-detail');
    await traffic.filter({ hasText: /last 5 minutes$/ }).waitFor();
    const late = page.waitForResponse('**/admin/stats?window_seconds=86400');
    slow.release();
    await late;
    // Let the page handle the late answer (it draws synchronously once the body is read).
    await page.evaluate(
      'new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50)))',
    );
    expect(await traffic.textContent()).not.toContain('987');
    expect(await traffic.textContent()).toMatch(/last 5 minutes$/);
    await page.unroute('**/admin/stats?window_seconds=86400');
  });

  it('overview left before its first answer stops polling', async () => {
    const slow = held();
    await page.route('**/admin/stats*', async (route: Route) => {
      await slow.released;
      await route.continue();
    });
    const nav = page.getByRole('navigation', { name: 'Sections' });
    await nav.getByRole('link', { name: 'Providers' }).click();
    await page.getByRole('heading', { level: 1, name: 'Providers' }).waitFor();
    const first = page.waitForRequest('**/admin/stats*');
    await nav.getByRole('link', { name: 'Overview' }).click();
    await first;
    // The operator moves on while the overview still waits for its first answer.
    await nav.getByRole('link', { name: 'Circuit breakers' }).click();
    await page.getByRole('heading', { level: 1, name: 'Circuit breakers' }).waitFor();
    const answered = page.waitForResponse('**/admin/stats*');
    slow.release();
    await answered;
    await page.unroute('**/admin/stats*');
    // The overview polls every 5 s: nothing may ask for /admin/stats while another page shows.
    const polled = await page
      .waitForRequest('**/admin/stats*', { timeout: 7_000 })
      .then(() => true)
      .catch(() => false);
    expect(polled).toBe(false);
  });

  it('keys: a slow answer for the previous user filter does not replace the current one', async () => {
    await page
      .getByRole('navigation', { name: 'Sections' })
      .getByRole('link', { name: 'API keys' })
      .click();
    await page.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
    await page.waitForLoadState('networkidle');
    const slow = held();
    const pattern = `**/admin/keys?user_id=${first.userId}*`;
    await page.route(pattern, async (route: Route) => {
      await slow.released;
      await route.continue();
    });
    const filter = page.getByLabel('Show keys of');
    const heldFirst = page.waitForRequest(pattern);
    await filter.selectOption({ label: first.username });
    await heldFirst;
    const secondAnswer = page.waitForResponse(`**/admin/keys?user_id=${second.userId}*`);
    await filter.selectOption({ label: second.username });
    await secondAnswer;
    const list = page.getByRole('region', { name: 'API keys' });
    await list.getByText(second.key.slice(0, 10)).waitFor();
    const late = page.waitForResponse(pattern);
    slow.release();
    await late;
    await page.evaluate(
      'new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 50)))',
    );
    const text = (await list.textContent()) ?? '';
    expect(text).toContain(second.key.slice(0, 10));
    expect(text).not.toContain(first.key.slice(0, 10));
    await page.unroute(pattern);
    expect(pageProblems).toEqual([]);
  });

  const valid = (el: unknown) => (el as { checkValidity(): boolean }).checkValidity();

  it('cache: the user id field refuses what is not a UUID before asking anything', async () => {
    await page
      .getByRole('navigation', { name: 'Sections' })
      .getByRole('link', { name: 'Response cache' })
      .click();
    await page.getByRole('heading', { level: 1, name: 'Response cache' }).waitFor();
    const userId = page.getByLabel('User id (optional)');
    await userId.fill('not-a-uuid');
    expect(await userId.evaluate(valid)).toBe(false);
    await userId.fill(first.userId);
    expect(await userId.evaluate(valid)).toBe(true);
    // Submitting the bad value opens no confirmation: the form's own check stops it.
    await userId.fill('zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz');
    await page.getByRole('button', { name: 'Clear cache' }).click();
    expect(await page.getByRole('dialog').count()).toBe(0);
    await userId.fill('');
    expect(pageProblems).toEqual([]);
  });

  it('a sign-out on expiry cancels an open confirmation but keeps a new key on screen', async () => {
    // Tokens of 12 s: the console signs out 5 s before expiry, 7 s after signing in.
    const short = await startGateway({ env: { JWT_EXPIRES_IN: '12' } });
    const tab = await context.newPage();
    try {
      const { token: apiToken, password: pw } = await adminToken(short);
      const owner = await newConsumer(short);
      const signInTo = async () => {
        await tab.goto(`${short.url}/admin/ui/#/keys`);
        await tab.getByLabel('Username').fill('admin');
        await tab.getByLabel('Password').fill(pw);
        await tab.getByRole('button', { name: 'Sign in' }).click();
        await tab.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
      };
      const expired = tab.getByText('Your session expired. Sign in again.');

      await signInTo();
      await tab.getByRole('button', { name: /^Revoke test/ }).click();
      await tab.getByRole('dialog').getByRole('button', { name: 'Revoke key' }).waitFor();
      await expired.waitFor({ timeout: 20_000 });
      // The confirmation is gone with the session: nothing is left to click that does nothing.
      await tab.getByRole('dialog').waitFor({ state: 'detached' });
      const key = await fetch(`${short.url}/admin/keys/${owner.keyId}`, {
        headers: { authorization: `Bearer ${apiToken}` },
      });
      expect(((await key.json()) as { status: string }).status).toBe('active');

      // A key just created stays on screen through the sign-out: it cannot be shown again.
      await signInTo();
      const create = tab.getByRole('form', { name: 'Create a key' });
      await create.getByLabel('Name').fill('made-before-expiry');
      await create.getByRole('button', { name: 'Create key' }).click();
      const secret = tab.getByRole('dialog').getByLabel('Key');
      await secret.waitFor();
      await expired.waitFor({ timeout: 20_000 });
      expect(await secret.inputValue()).toMatch(/^sk-sy-/);
      await tab.getByRole('button', { name: 'Done' }).click();
      await tab.getByRole('dialog').waitFor({ state: 'detached' });
      expect(await tab.getByRole('form', { name: 'Sign in' }).isVisible()).toBe(true);
    } finally {
      await tab.close();
      await short.close();
    }
  });

  it('shows the day the session ends when it is not today', async () => {
    const long = await startGateway({ env: { JWT_EXPIRES_IN: '2d' } });
    const tab = await context.newPage();
    try {
      const { password: pw } = await adminToken(long);
      await tab.goto(`${long.url}/admin/ui/`);
      await tab.getByLabel('Username').fill('admin');
      await tab.getByLabel('Password').fill(pw);
      await tab.getByRole('button', { name: 'Sign in' }).click();
      await tab.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
      // en-GB in UTC, as the context is set up: e.g. " · until 26 Nov, 08:45".
      const end = new Date(Date.now() + 2 * 86_400_000);
      const day = end.toLocaleDateString('en-GB', {
        day: 'numeric',
        month: 'short',
        timeZone: 'UTC',
      });
      expect(await tab.locator('.who .expires').textContent()).toContain(`until ${day}`);
    } finally {
      await tab.close();
      await long.close();
    }
  });
});
