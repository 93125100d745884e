import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { BrowserContext, Page } from 'playwright-core';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { writeProvidersFile } from './support/mock-upstream';
import {
  chromiumOrSkip,
  ConsoleBrowser,
  ensureUiBuilt,
  openConsoleBrowser,
  ROOT,
} from './admin-ui.helpers';

/*
 * The admin console in Debian's chromium, driven by playwright-core: sign in (and a refused
 * sign-in), change a provider's priority, reset a breaker, create and revoke a key, grant
 * credits, act on sessions and the cache, on a laptop and a phone screen. Each page's
 * screenshot is kept in test-artifacts/admin-ui/; with ADMIN_UI_DOCS_SCREENSHOTS=1 the test
 * also refreshes the copies in docs/screenshots/ that the runbook shows.
 */

const executablePath = chromiumOrSkip();
const describeInBrowser = executablePath ? describe : describe.skip;

const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'admin-ui');
const DOCS = path.join(ROOT, 'docs', 'screenshots');
const UPDATE_DOCS = process.env.ADMIN_UI_DOCS_SCREENSHOTS === '1';

/*
 * Runs in the page (a string: the test tsconfig has no DOM types): every form control needs a
 * label (or aria-label), every button and link a name. Answers the offenders' markup.
 */
const UNLABELLED_CONTROLS = `(() => {
  const nameOf = (el) =>
    el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') ||
    Array.from(el.labels || []).map((l) => l.textContent || '').join(' ').trim();
  const controls = Array.from(document.querySelectorAll('input, select, textarea'))
    .filter((el) => el.type !== 'hidden' && !nameOf(el));
  const buttons = Array.from(document.querySelectorAll('button, a'))
    .filter((el) => !(el.getAttribute('aria-label') || el.textContent || '').trim());
  return [...controls, ...buttons].map((el) => el.outerHTML.slice(0, 120));
})()`;

describeInBrowser('admin console in a real browser', () => {
  let gw: TestGateway;
  let context: BrowserContext;
  let page: Page;
  let token: string;
  let password: string;
  let consumer: TestConsumer;
  let browser: ConsoleBrowser;
  /** Script errors, CSP or Trusted Types violations the page reported. */
  const pageProblems: string[] = [];
  /** Any request that left the gateway (fonts, CDNs, telemetry): there must be none. */
  const offsite: string[] = [];

  const adminApi = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${gw.url}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };

  const shot = async (name: string, options: { fullPage?: boolean } = {}) => {
    // Transient notices would cover the page in the pictures; the sticky header needs the top.
    await page.evaluate(
      "document.querySelectorAll('.notice').forEach((n) => n.remove()); window.scrollTo(0, 0)",
    );
    const file = path.join(ARTIFACTS, `${name}.png`);
    await page.screenshot({ path: file, fullPage: options.fullPage ?? true });
    if (UPDATE_DOCS) copyFileSync(file, path.join(DOCS, `${name}.png`));
  };

  const open = async (linkName: string, heading: string) => {
    await page
      .getByRole('navigation', { name: 'Sections' })
      .getByRole('link', { name: linkName })
      .click();
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    // The page's data has loaded once its loading promise settled: wait for the spinner-free state.
    await page.waitForLoadState('networkidle');
  };

  const notice = (text: string | RegExp) => page.locator('.notices').getByText(text);

  beforeAll(async () => {
    ensureUiBuilt();
    mkdirSync(ARTIFACTS, { recursive: true });
    if (UPDATE_DOCS) mkdirSync(DOCS, { recursive: true });
    // Two providers of the same model, so priority decides which one answers.
    const providers = writeProvidersFile(
      [
        'providers:',
        '  - { name: mock, kind: mock, priority: 100, models: [mock-gpt, mock-image] }',
        '  - { name: backup, kind: mock, priority: 200, models: [mock-gpt], latency_ms: 5 }',
        'pricing:',
        '  - { model: mock-gpt, per_request: 1, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 2 }',
        '',
      ].join('\n'),
    );
    gw = await startGateway({ env: { PROVIDERS_FILE: providers } });
    ({ token, password } = await adminToken(gw));
    consumer = await newConsumer(gw, { credits: 5000 });
    browser = await openConsoleBrowser(executablePath!, pageProblems);
    ({ context, page } = browser);
    context.on('request', (req) => {
      if (!req.url().startsWith(gw.url) && !req.url().startsWith('data:')) offsite.push(req.url());
    });
    // Some traffic for the overview's numbers and chart.
    for (let i = 0; i < 12; i++) {
      await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'mock-gpt',
          temperature: 0,
          messages: [{ role: 'user', content: `hello ${i % 4}` }],
        }),
      });
    }
  });

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('refuses a wrong password with a clear message', async () => {
    await page.goto(`${gw.url}/admin/ui/`);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toBe('Wrong username or password.');
    // Still on the sign-in form, and no token anywhere but memory.
    expect(await page.getByRole('form', { name: 'Sign in' }).isVisible()).toBe(true);
    await shot('signin-failed', { fullPage: false });
  });

  it('signs in with the keyboard alone and keeps the token out of storage', async () => {
    await page.goto(`${gw.url}/admin/ui/`);
    // Focus starts in Username; Tab to Password; Enter submits.
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type(password);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    const stored = await page.evaluate(
      '({ local: JSON.stringify(localStorage), session: JSON.stringify(sessionStorage), cookie: document.cookie })',
    );
    expect(stored).toEqual({ local: '{}', session: '{}', cookie: '' });
  });

  it('shows the live overview from /admin/stats', async () => {
    const cards = page.getByRole('list', { name: 'Key numbers' });
    await cards.waitFor();
    // Request logs reach Postgres in batches: wait until the 12 requests are counted.
    const traffic = cards.locator('li', { hasText: 'Requests / min' }).locator('.card-detail');
    const deadline = Date.now() + 15_000;
    while (!((await traffic.textContent()) ?? '').startsWith('12 requests')) {
      if (Date.now() > deadline)
        throw new Error(`traffic card says: ${await traffic.textContent()}`);
      await page.waitForTimeout(500);
    }
    const text = (await cards.textContent()) ?? '';
    for (const label of [
      'Requests / min',
      'Error rate (5xx)',
      'p95 latency',
      'Cache hit rate',
      'Credits spent',
    ])
      expect(text).toContain(label);
    // 4 distinct prompts out of 12 deterministic requests: 8 cache hits.
    expect(text).toMatch(/Cache hit rate66[.,]7 %/);
    await shot('overview');
  });

  it('changes a provider’s priority', async () => {
    await open('Providers', 'Providers');
    const ask = () =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'mock-gpt',
          messages: [{ role: 'user', content: 'who answers?' }],
        }),
      });
    expect((await ask()).headers.get('x-provider')).toBe('mock');
    const row = page.getByRole('form', { name: 'Routing of backup' });
    await row.getByLabel('Priority of backup').fill('7');
    await row.getByRole('button', { name: 'Save' }).click();
    await notice('backup: priority 7, enabled.').waitFor();
    const { body } = await adminApi('GET', '/admin/providers');
    expect(body.data.find((p: { name: string }) => p.name === 'backup').priority).toBe(7);
    // Routing follows at once: backup now comes first.
    expect((await ask()).headers.get('x-provider')).toBe('backup');
    // The table is sorted by priority: backup is now the first row.
    const first = page.getByRole('region', { name: 'Providers' }).locator('tbody tr').first();
    expect(await first.locator('strong').textContent()).toBe('backup');
    await shot('providers');
  });

  it('resets an open circuit breaker', async () => {
    expect(
      (await adminApi('POST', '/admin/circuit-breakers/mock/force-open', { durationMs: 600_000 }))
        .status,
    ).toBe(200);
    await open('Circuit breakers', 'Circuit breakers');
    const mockRow = page
      .getByRole('region', { name: 'Circuit breakers' })
      .locator('tbody tr', { has: page.getByText('mock', { exact: true }) });
    await mockRow.locator('.badge').getByText('open', { exact: true }).waitFor();
    await shot('breakers');
    await page.getByRole('button', { name: 'Reset breaker mock' }).click();
    await notice('Breaker mock reset: closed.').waitFor();
    await mockRow.locator('.badge').getByText('closed', { exact: true }).waitFor();
    expect((await adminApi('GET', '/admin/circuit-breakers/mock')).body.state).toBe('closed');
  });

  it('creates a key (shown once), which works, then revokes it', async () => {
    await open('API keys', 'API keys');
    const create = page.getByRole('form', { name: 'Create a key' });
    await create.getByLabel('User').selectOption({ label: consumer.username });
    await create.getByLabel('Name').fill('console-test');
    await create.getByLabel('Requests per minute').fill('120');
    await create.getByRole('button', { name: 'Create key' }).click();

    const dialog = page.getByRole('dialog', { name: 'Key "console-test" created' });
    await dialog.waitFor();
    expect(await dialog.getByText('shown only this once').isVisible()).toBe(true);
    const key = await dialog.getByLabel('Key').inputValue();
    expect(key).toMatch(/^sk-sy-[A-Za-z0-9]{20,}$/);
    await shot('keys-created', { fullPage: false });
    await dialog.getByRole('button', { name: 'Done' }).click();
    await dialog.waitFor({ state: 'detached' });
    // A closed <dialog> leaves the accessibility tree at once but the DOM only in its 'close'
    // event: wait for the element itself before reading the page.
    await page.locator('dialog').waitFor({ state: 'detached' });

    const models = () =>
      fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect((await models()).status).toBe(200);
    const prefix = key.slice(0, 10);
    const listed = (await adminApi('GET', `/admin/keys?user_id=${consumer.userId}`)).body.data;
    expect(listed.find((k: { prefix: string }) => k.prefix === prefix)).toMatchObject({
      name: 'console-test',
      rate_limit_per_minute: 120,
    });
    // The page never shows the key again: the list only has its prefix.
    expect(await page.content()).not.toContain(key);
    await shot('keys');

    await page.getByRole('button', { name: `Revoke console-test (${prefix}…)` }).click();
    const confirm = page.getByRole('dialog', { name: `Revoke console-test (${prefix}…)?` });
    // Escape cancels (focus starts on Cancel, so Enter would too): nothing is revoked.
    await confirm.waitFor();
    await page.keyboard.press('Escape');
    await confirm.waitFor({ state: 'detached' });
    expect((await models()).status).toBe(200);
    await page.getByRole('button', { name: `Revoke console-test (${prefix}…)` }).click();
    await confirm.getByRole('button', { name: 'Revoke key' }).click();
    await notice(`Revoked console-test (${prefix}…).`).waitFor();
    const refused = await models();
    expect(refused.status).toBe(401);
    expect((await refused.json()).error.code).toBe('key_revoked');
  });

  it('rotates a key (new key shown once, old one valid for the grace) and edits limits by keyboard', async () => {
    const models = (key: string) =>
      fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    const oldPrefix = consumer.key.slice(0, 10);
    await page.getByRole('button', { name: `Rotate test (${oldPrefix}…)` }).click();
    const rotate = page.getByRole('dialog', { name: 'Rotate test' });
    await rotate.getByLabel('Grace period').selectOption('3600');
    await rotate.getByRole('button', { name: 'Rotate key' }).click();
    const shown = page.getByRole('dialog', { name: 'New key for "test"' });
    const newKey = await shown.getByLabel('Key').inputValue();
    expect(newKey).toMatch(/^sk-sy-/);
    expect(newKey).not.toBe(consumer.key);
    await page.keyboard.press('Escape');
    await shown.waitFor({ state: 'detached' });
    expect((await models(newKey)).status).toBe(200);
    expect((await models(consumer.key)).status).toBe(200); // grace period
    const keys = page.getByRole('region', { name: 'API keys' });
    await keys.locator('.badge').getByText('rotating', { exact: true }).waitFor();

    // Limits of the new key with the keyboard only: focus, Enter, type, Enter.
    const newPrefix = newKey.slice(0, 10);
    await page.getByRole('button', { name: `Edit limits of test (${newPrefix}…)` }).focus();
    await page.keyboard.press('Enter');
    const limits = page.getByRole('dialog', { name: 'Limits of test' });
    await limits.getByLabel('Requests per minute').focus();
    await page.keyboard.type('30');
    await page.keyboard.press('Enter');
    await notice('Saved the limits of test.').waitFor();
    const listed = (await adminApi('GET', `/admin/keys?user_id=${consumer.userId}`)).body.data;
    expect(listed.find((k: { prefix: string }) => k.prefix === newPrefix)).toMatchObject({
      status: 'active',
      rate_limit_per_minute: 30,
      rate_limit_per_hour: null,
    });
  });

  it('grants credits and shows the new balance and ledger row', async () => {
    const before = (await adminApi('GET', `/admin/credits/users/${consumer.userId}`)).body.balance;
    await open('Users and credits', 'Users and credits');
    await page.getByRole('button', { name: `Credits of ${consumer.username}` }).click();
    const account = page.getByRole('region', { name: `Credits of ${consumer.username}` });
    await account.getByTestId('balance').waitFor();
    const grant = account.getByRole('form', { name: `Grant credits to ${consumer.username}` });
    await grant.getByLabel('Amount').fill('250');
    await grant.getByLabel('Description').fill('console test grant');
    await grant.getByRole('button', { name: 'Grant credits' }).click();
    await notice(/Granted 250 credits/).waitFor();
    const after = (await adminApi('GET', `/admin/credits/users/${consumer.userId}`)).body.balance;
    expect(after).toBe(before + 250);
    await account.getByText('console test grant').waitFor();
    expect(((await account.getByTestId('balance').textContent()) ?? '').replace(/\D/g, '')).toBe(
      String(after),
    );
    await page.getByRole('button', { name: 'Check now' }).click();
    await page.getByText('The ledger is consistent.').waitFor();
    await shot('users-credits');
  });

  it('adds a session, quarantines it and reactivates it', async () => {
    await open('Upstream sessions', 'Upstream sessions');
    const add = page.getByRole('form', { name: 'Add a session' });
    await add.getByLabel('Provider').fill('mock');
    await add.getByLabel('Credential').fill('sso=console-test-credential-0123456789');
    await add.getByLabel('Note (optional)').fill('added from the console test');
    await add.getByRole('button', { name: 'Add session' }).click();
    await notice(/Added session sso=…6789 for mock/).waitFor();
    const table = page.getByRole('region', { name: 'Upstream sessions' });
    await table.getByRole('button', { name: /^Quarantine mock session/ }).click();
    await notice(/Quarantined mock session/).waitFor();
    await table.getByText('quarantined', { exact: true }).waitFor();
    await shot('sessions');
    await table.getByRole('button', { name: /^Activate mock session/ }).click();
    await notice(/Activated mock session/).waitFor();
    const { body } = await adminApi('GET', '/admin/sessions');
    expect(body.sessions).toEqual([
      expect.objectContaining({ provider: 'mock', status: 'healthy' }),
    ]);
    // The credential itself never comes back to the page.
    expect(await page.content()).not.toContain('console-test-credential');
  });

  it('shows jobs, clears the cache, and lists the audit log', async () => {
    await open('Jobs', 'Jobs');
    await page.getByText('No jobs with this status.').waitFor();
    await shot('jobs');

    await open('Cache', 'Response cache');
    await page
      .getByRole('form', { name: 'Clear the cache' })
      .getByRole('button', { name: 'Clear cache' })
      .click();
    await page
      .getByRole('dialog', { name: 'Clear the cache?' })
      .getByRole('button', { name: 'Clear' })
      .click();
    await notice(/Removed 4 cache entries/).waitFor();
    await shot('cache');

    await open('Audit log', 'Audit log');
    const log = page.getByRole('region', { name: 'Audit log' });
    for (const action of [
      'cache.clear',
      'credits.grant',
      'api_key.revoke',
      'api_key.create',
      'circuit_breaker.reset',
      'provider.update',
    ])
      await log.getByText(action, { exact: true }).first().waitFor();
    await shot('audit');
  });

  it('fits a phone screen, with the menu behind a button', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${gw.url}/admin/ui/#/overview`);
    // A reload signs out: the token was only in memory.
    await page.reload();
    await page.getByRole('form', { name: 'Sign in' }).waitFor();
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('list', { name: 'Key numbers' }).waitFor();
    const nav = page.getByRole('navigation', { name: 'Sections' });
    expect(await nav.isVisible()).toBe(false);
    const menu = page.getByRole('button', { name: 'Menu' });
    expect(await menu.getAttribute('aria-expanded')).toBe('false');
    const overflow = await page.evaluate<number>(
      'document.documentElement.scrollWidth - window.innerWidth',
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await shot('phone-overview', { fullPage: false });
    await menu.click();
    expect(await menu.getAttribute('aria-expanded')).toBe('true');
    await nav.getByRole('link', { name: 'API keys' }).waitFor();
    await shot('phone-menu', { fullPage: false });
    await nav.getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
    expect(await nav.isVisible()).toBe(false);
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it('labels every control on every page and reaches nothing outside the gateway', async () => {
    const pages = [
      'overview',
      'providers',
      'breakers',
      'sessions',
      'keys',
      'users',
      'jobs',
      'cache',
      'audit',
    ];
    for (const name of pages) {
      await page.goto(`${gw.url}/admin/ui/#/${name}`);
      await page.locator(`.page[data-page="${name}"]`).waitFor();
      await page.waitForLoadState('networkidle');
      const unlabelled = await page.evaluate<string[]>(UNLABELLED_CONTROLS);
      expect({ page: name, unlabelled }).toEqual({ page: name, unlabelled: [] });
    }
    expect(offsite).toEqual([]);
    expect(pageProblems).toEqual([]);
  });
});
