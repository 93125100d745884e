import './styles.css';
import { currentSession, onSignedOut, signIn, signOut } from './api';
import { h, replace } from './dom';
import { PAGES } from './pages';
import { errorSlot, field, noticeArea } from './ui';

const app = document.getElementById('app') as HTMLElement;
let leavePage: (() => void) | void;
let signedOutReason: string | null = null;
// Bumped by every navigation and sign-out: a page that finishes rendering after the operator
// has already left it (the overview waiting on a slow /admin/stats) is stopped at once instead
// of polling behind the page shown now.
let visit = 0;

onSignedOut((reason) => {
  visit += 1;
  signedOutReason = reason;
  leavePage?.();
  leavePage = undefined;
  showSignIn();
});

// ---- sign-in --------------------------------------------------------------------------------

function showSignIn(): void {
  document.title = 'Sign in · Switchyard admin';
  const error = errorSlot();
  const username = h('input', {
    name: 'username',
    autocomplete: 'username',
    required: true,
    autocapitalize: 'none',
    spellcheck: 'false',
  });
  const password = h('input', {
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const signInForm = h(
    'form',
    { 'aria-label': 'Sign in', class: 'signin-form' },
    field('Username', username),
    field('Password', password),
    h('div', { class: 'form-actions' }, submit),
    error.el,
  );
  signInForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    submit.disabled = true;
    submit.setAttribute('aria-busy', 'true');
    try {
      await signIn(username.value.trim(), password.value);
      password.value = '';
      signedOutReason = null;
      showShell();
    } catch (err) {
      error.show(err);
      password.select();
    } finally {
      submit.disabled = false;
      submit.removeAttribute('aria-busy');
    }
  });
  const reason = signedOutReason
    ? h('p', { class: 'warning', role: 'status' }, signedOutReason)
    : null;
  replace(
    app,
    h(
      'main',
      { class: 'signin', id: 'main-content' },
      h('h1', {}, 'Switchyard admin'),
      reason,
      signInForm,
      h(
        'p',
        { class: 'hint' },
        'Sign in with an admin account (npm run cli -- create-admin). The session lives in this tab only: reloading or closing it signs you out.',
      ),
    ),
    noticeArea(),
  );
  username.focus();
}

// ---- the signed-in shell --------------------------------------------------------------------

let nav: HTMLElement;
let main: HTMLElement;
let menuButton: HTMLButtonElement;

function showShell(): void {
  const session = currentSession();
  if (!session) return showSignIn();
  menuButton = h(
    'button',
    {
      type: 'button',
      class: 'menu-toggle quiet',
      'aria-expanded': 'false',
      'aria-controls': 'nav',
    },
    'Menu',
  );
  menuButton.addEventListener('click', () =>
    setMenu(menuButton.getAttribute('aria-expanded') !== 'true'),
  );
  nav = h(
    'nav',
    { id: 'nav', 'aria-label': 'Sections' },
    h(
      'ul',
      {},
      PAGES.map((p) => h('li', {}, h('a', { href: `#/${p.path}`, 'data-path': p.path }, p.title))),
    ),
  );
  nav.addEventListener('click', (event) => {
    if ((event.target as HTMLElement).closest('a')) setMenu(false);
  });
  main = h('main', { id: 'main-content', tabindex: -1 });
  const skip = h('a', { class: 'skip-link', href: '#main-content' }, 'Skip to content');
  // The hash is the router's: move focus without navigating.
  skip.addEventListener('click', (event) => {
    event.preventDefault();
    (main.querySelector('h1') ?? main).focus();
  });
  const expiry = new Date(session.expiresAt);
  // The time alone when it is today; with the date too for longer lifetimes (JWT_EXPIRES_IN=2d).
  const expires = expiry.toLocaleString([], {
    ...(expiry.toDateString() === new Date().toDateString()
      ? {}
      : { day: 'numeric', month: 'short' }),
    hour: '2-digit',
    minute: '2-digit',
  });
  replace(
    app,
    skip,
    h(
      'header',
      { class: 'topbar' },
      menuButton,
      h('a', { class: 'brand', href: '#/overview' }, 'Switchyard', h('span', {}, ' admin')),
      h(
        'p',
        { class: 'who' },
        'Signed in as ',
        h('strong', {}, session.username),
        h('span', { class: 'expires' }, ` · until ${expires}`),
      ),
      h(
        'button',
        { type: 'button', class: 'quiet', on: { click: () => signOut('You signed out.') } },
        'Sign out',
      ),
    ),
    h('div', { class: 'layout' }, nav, main),
    noticeArea(),
  );
  void route();
}

function setMenu(open: boolean): void {
  menuButton.setAttribute('aria-expanded', String(open));
  nav.classList.toggle('open', open);
}

async function route(): Promise<void> {
  if (!currentSession()) return;
  const path = location.hash.replace(/^#\/?/, '') || 'overview';
  const page = PAGES.find((p) => p.path === path);
  const mine = ++visit;
  leavePage?.();
  leavePage = undefined;
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.path === path) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const title = page?.title ?? 'Not found';
  document.title = `${title} · Switchyard admin`;
  const heading = h('h1', { tabindex: -1 }, title);
  const root = h('div', { class: 'page', 'data-page': path });
  replace(main, heading, root);
  // Screen readers and keyboard users land on the new page's heading.
  heading.focus();
  if (!page) {
    root.append(h('p', {}, 'There is no such page. Pick one from the menu.'));
    return;
  }
  try {
    const leave = await page.render(root);
    if (mine === visit) leavePage = leave;
    else leave?.();
  } catch (err) {
    if (mine === visit && currentSession()) root.append(errorSlotWith(err));
  }
}

function errorSlotWith(err: unknown): HTMLElement {
  const slot = errorSlot();
  slot.show(err);
  return slot.el;
}

window.addEventListener('hashchange', () => void route());
showSignIn();
