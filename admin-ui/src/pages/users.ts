import { api, Page, query } from '../api';
import { h, num, replace, when } from '../dom';
import type { CreditAccount, CreditAudit, LedgerEntry, PageDef, User } from '../types';
import {
  actionButton,
  badge,
  dataTable,
  errorSlot,
  facts,
  field,
  form,
  intValue,
  notify,
  pager,
  section,
  select,
  value,
} from '../ui';

export const usersPage: PageDef = {
  path: 'users',
  title: 'Users and credits',
  async render(root) {
    const error = errorSlot();
    const account = h('div', { class: 'account' });
    let selected: User | undefined;
    const users = pager<User>(
      (cursor) => api<Page<User>>('GET', `/admin/users${query({ limit: 50, cursor })}`),
      (rows) =>
        dataTable(
          'Users',
          [
            {
              header: 'User',
              cell: (u) => [
                h('strong', {}, u.username),
                u.email ? [h('br'), h('span', { class: 'hint' }, u.email)] : null,
              ],
            },
            { header: 'Role', cell: (u) => badge(u.role) },
            { header: 'Balance', cell: (u) => num(u.balance), className: 'num' },
            { header: 'Base quota', cell: (u) => num(u.base_quota), className: 'num' },
            { header: 'Created', cell: (u) => when(u.created_at) },
            {
              header: 'Credits',
              cell: (u) =>
                actionButton(
                  'Credits',
                  async () => {
                    selected = u;
                    await showAccount();
                    account.querySelector('h2')?.focus();
                  },
                  { ariaLabel: `Credits of ${u.username}`, variant: 'quiet', onError: error.show },
                ),
            },
          ],
          rows,
          'No users yet.',
        ),
    );

    const showAccount = async () => {
      if (!selected) return replace(account);
      const user = selected;
      const details = h('div');
      const ledger = pager<LedgerEntry>(
        (cursor) =>
          api<Page<LedgerEntry>>(
            'GET',
            `/admin/credits/users/${user.id}/ledger${query({ limit: 20, cursor })}`,
          ),
        (rows) =>
          dataTable(
            `Ledger of ${user.username}`,
            [
              { header: 'When', cell: (e) => when(e.created_at) },
              { header: 'Event', cell: (e) => e.event_type.replace(/_/g, ' ') },
              {
                header: 'Amount',
                cell: (e) => (e.amount > 0 ? `+${num(e.amount)}` : num(e.amount)),
                className: 'num',
              },
              { header: 'Balance after', cell: (e) => num(e.balance_after), className: 'num' },
              { header: 'Description', cell: (e) => e.description ?? '—' },
              {
                header: 'Request',
                cell: (e) => (e.request_id ? h('code', {}, e.request_id) : '—'),
              },
            ],
            rows,
            'No ledger entries.',
          ),
      );
      const refresh = async () => {
        const acct = await api<CreditAccount>('GET', `/admin/credits/users/${user.id}`);
        replace(
          details,
          facts([
            ['Balance', h('span', { 'data-testid': 'balance' }, num(acct.balance))],
            ['Base quota', num(acct.base_quota)],
            ['Billing cycle ends', when(acct.billing_cycle_end)],
          ]),
        );
        await ledger.reload();
      };
      const titleId = `account-${user.id}`;
      replace(
        account,
        h(
          'section',
          { class: 'panel', 'aria-labelledby': titleId },
          h('h2', { id: titleId, tabindex: -1 }, `Credits of ${user.username}`),
          details,
          grantForm(user, async () => {
            await refresh();
            await users.reload();
          }),
          h('h3', {}, 'Ledger'),
          ledger.el,
        ),
      );
      await refresh();
    };

    const auditResult = h('div', { role: 'status' });
    root.append(
      h(
        'p',
        { class: 'lead' },
        'Every credit change is a ledger row; a grant with the same idempotency key is applied once.',
      ),
      error.el,
      section('Users', users.el),
      account,
      section(
        'Ledger consistency',
        h(
          'p',
          {},
          'Checks that every balance equals the sum of its ledger, that no balance is negative, and lists reservations left open.',
        ),
        actionButton(
          'Check now',
          async () => {
            const audit = await api<CreditAudit>('GET', '/admin/credits/audit');
            replace(auditResult, auditView(audit));
          },
          { onError: error.show },
        ),
        auditResult,
      ),
      section(
        'Create a user',
        createUserForm(() => users.reload()),
      ),
    );
    await users.reload();
  },
};

/** crypto.randomUUID needs a secure context; the console may be served over plain HTTP. */
function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

function grantForm(user: User, after: () => Promise<void>): HTMLFormElement {
  // One idempotency key per intended grant: a double click or a retry after a timeout is applied once.
  let idempotencyKey = randomKey();
  return form(
    { label: `Grant credits to ${user.username}`, submitLabel: 'Grant credits' },
    [
      h(
        'div',
        { class: 'grid' },
        field(
          'Amount',
          h('input', {
            type: 'number',
            name: 'amount',
            min: 1,
            step: 1,
            required: true,
            class: 'narrow',
          }),
        ),
        field(
          'Description',
          h('input', {
            name: 'description',
            maxlength: 500,
            placeholder: 'e.g. support ticket 1234',
          }),
        ),
      ),
    ],
    async (f) => {
      const amount = intValue(f, 'amount');
      const body: Record<string, unknown> = {
        user_id: user.id,
        amount,
        idempotency_key: idempotencyKey,
      };
      const description = value(f, 'description');
      if (description) body.description = description;
      const entry = await api<LedgerEntry & { replayed: boolean }>(
        'POST',
        '/admin/credits/grant',
        body,
      );
      idempotencyKey = randomKey();
      f.reset();
      notify(
        entry.replayed
          ? `That grant was already applied; balance ${num(entry.balance_after)}.`
          : `Granted ${num(entry.amount)} credits to ${user.username}; balance ${num(entry.balance_after)}.`,
      );
      await after();
    },
  );
}

function auditView(audit: CreditAudit): HTMLElement {
  const problems: [string, number][] = [
    ['Balances that differ from their ledger', audit.balance_mismatches.length],
    ['Negative balances', audit.negative_balances.length],
    ['Negative ledger rows', audit.negative_ledger_rows.length],
    ['Duplicate idempotency keys', audit.duplicate_idempotency_keys.length],
    ['Open reservations', audit.open_reservations.length],
  ];
  return h(
    'div',
    {},
    h(
      'p',
      { class: audit.healthy ? 'ok' : 'warning' },
      audit.healthy
        ? 'The ledger is consistent.'
        : 'The ledger needs attention: see the runbook (credits recalculate).',
    ),
    facts(problems.map(([label, n]) => [label, num(n)])),
  );
}

function createUserForm(reload: () => Promise<void>): HTMLFormElement {
  return form(
    { label: 'Create a user', submitLabel: 'Create user' },
    [
      h(
        'div',
        { class: 'grid' },
        field(
          'Username',
          h('input', { name: 'username', required: true, maxlength: 100, autocomplete: 'off' }),
        ),
        field(
          'Email (optional)',
          h('input', { type: 'email', name: 'email', autocomplete: 'off' }),
        ),
        field(
          'Role',
          select(
            [
              { value: 'user', label: 'User' },
              { value: 'admin', label: 'Admin' },
            ],
            { name: 'role' },
          ),
        ),
        field(
          'Starting credits',
          h('input', {
            type: 'number',
            name: 'base_quota',
            min: 0,
            step: 1,
            value: '0',
            class: 'narrow',
          }),
        ),
        field(
          'Password (optional)',
          h('input', {
            type: 'password',
            name: 'password',
            minlength: 12,
            autocomplete: 'new-password',
          }),
          'Only needed to sign in here; at least 12 characters.',
        ),
      ),
    ],
    async (f) => {
      const body: Record<string, unknown> = {
        username: value(f, 'username'),
        role: value(f, 'role'),
        base_quota: intValue(f, 'base_quota') ?? 0,
      };
      const email = value(f, 'email');
      if (email) body.email = email;
      const password = (f.elements.namedItem('password') as HTMLInputElement).value;
      if (password) body.password = password;
      const user = await api<User>('POST', '/admin/users', body);
      f.reset();
      notify(`Created user ${user.username}.`);
      await reload();
    },
  );
}
