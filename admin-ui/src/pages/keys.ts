import { api, Page, query } from '../api';
import { h, num, when } from '../dom';
import type { ApiKey, IssuedKey, PageDef, User } from '../types';
import {
  actionButton,
  badge,
  checkbox,
  confirmAction,
  dataTable,
  dialogForm,
  errorSlot,
  field,
  form,
  intValue,
  isoValue,
  notify,
  pager,
  section,
  select,
  showSecret,
  value,
} from '../ui';
import { loadUsers, userOptions } from './users-directory';

const SCOPES = ['chat', 'images', 'jobs'];
const ONCE =
  'Copy the key now: it is shown only this once (only its hash is stored). Give it to its owner over a safe channel.';

export const keysPage: PageDef = {
  path: 'keys',
  title: 'API keys',
  async render(root) {
    const users = await loadUsers();
    const names = new Map(users.map((u) => [u.id, u.username]));
    const error = errorSlot();
    const filter = select([{ value: '', label: 'All users' }, ...userOptions(users)], {
      name: 'user_filter',
    });
    const keys: { el: HTMLElement; reload(): Promise<void> } = pager<ApiKey>(
      (cursor) =>
        api<Page<ApiKey>>(
          'GET',
          `/admin/keys${query({ user_id: filter.value, limit: 50, cursor })}`,
        ),
      (rows) =>
        dataTable(
          'API keys',
          [
            {
              header: 'Key',
              cell: (k) => [h('strong', {}, k.name), h('br'), h('code', {}, `${k.prefix}…`)],
            },
            { header: 'User', cell: (k) => names.get(k.user_id) ?? k.user_id },
            { header: 'Scopes', cell: (k) => k.scopes.join(', ') },
            {
              header: 'Limits (min / hour)',
              cell: (k) => `${limit(k.rate_limit_per_minute)} / ${limit(k.rate_limit_per_hour)}`,
            },
            {
              header: 'Status',
              cell: (k) => [
                badge(k.status),
                k.status === 'rotating'
                  ? h('span', { class: 'hint' }, [' until ', when(k.revoked_at)])
                  : null,
              ],
            },
            { header: 'Last used', cell: (k) => when(k.last_used_at) },
            { header: 'Expires', cell: (k) => when(k.expires_at) },
            {
              header: 'Actions',
              cell: (k): HTMLElement | string => actions(k, () => keys.reload(), error.show),
            },
          ],
          rows,
          'No keys yet.',
        ),
    );
    filter.addEventListener('change', () => void keys.reload().catch(error.show));
    root.append(
      h(
        'p',
        { class: 'lead' },
        'Keys for the public API. A revocation, rotation or limit change reaches every replica within a second.',
      ),
      section(
        'Create a key',
        createForm(users, () => keys.reload()),
      ),
      section(
        'Keys',
        h('div', { class: 'toolbar' }, field('Show keys of', filter)),
        error.el,
        keys.el,
      ),
    );
    await keys.reload();
  },
};

function limit(n: number | null): string {
  return n === null ? 'default' : num(n);
}

function createForm(users: User[], reload: () => Promise<void>): HTMLFormElement {
  const scopes = SCOPES.map((s) => checkbox(s, { name: 'scope', value: s, checked: true }));
  return form(
    { label: 'Create a key', submitLabel: 'Create key' },
    [
      h(
        'div',
        { class: 'grid' },
        field('User', select(userOptions(users), { name: 'user_id', required: true })),
        field(
          'Name',
          h('input', {
            name: 'name',
            required: true,
            maxlength: 100,
            placeholder: 'e.g. billing-service',
          }),
        ),
        field(
          'Requests per minute',
          h('input', {
            type: 'number',
            name: 'rate_limit_per_minute',
            min: 1,
            step: 1,
            class: 'narrow',
          }),
          'Empty: the default (RATE_LIMIT_PER_MINUTE).',
        ),
        field(
          'Requests per hour',
          h('input', {
            type: 'number',
            name: 'rate_limit_per_hour',
            min: 1,
            step: 1,
            class: 'narrow',
          }),
          'Empty: the default (RATE_LIMIT_PER_HOUR).',
        ),
        field('Expires (optional)', h('input', { type: 'datetime-local', name: 'expires_at' })),
        field(
          'Cache scope',
          select(
            [
              { value: 'user', label: 'Per user' },
              { value: 'shared', label: 'Shared across users' },
            ],
            { name: 'cache_scope' },
          ),
        ),
      ),
      h(
        'fieldset',
        { class: 'checks' },
        h('legend', {}, 'Scopes'),
        scopes.map((s) => s.el),
      ),
    ],
    async (f) => {
      const body: Record<string, unknown> = {
        user_id: value(f, 'user_id'),
        name: value(f, 'name'),
        scopes: scopes.filter((s) => s.input.checked).map((s) => s.input.value),
        cache_scope: value(f, 'cache_scope'),
      };
      for (const name of ['rate_limit_per_minute', 'rate_limit_per_hour']) {
        const n = intValue(f, name);
        if (n !== undefined) body[name] = n;
      }
      const expires = isoValue(f, 'expires_at');
      if (expires) body.expires_at = expires;
      const issued = await api<IssuedKey>('POST', '/admin/keys', body);
      f.reset();
      await showSecret(`Key "${issued.name}" created`, issued.key, ONCE);
      notify(`Created key ${issued.prefix}… for ${issued.name}.`);
      await reload();
    },
  );
}

function actions(
  k: ApiKey,
  reload: () => Promise<void>,
  onError: (err: unknown) => void,
): HTMLElement | string {
  if (k.status === 'revoked' || k.status === 'expired') return '—';
  const label = `${k.name} (${k.prefix}…)`;
  return h(
    'div',
    { class: 'actions' },
    actionButton('Limits…', () => editLimits(k, reload), {
      ariaLabel: `Edit limits of ${label}`,
      variant: 'quiet',
      onError,
    }),
    k.status === 'active'
      ? actionButton('Rotate…', () => rotate(k, reload), {
          ariaLabel: `Rotate ${label}`,
          variant: 'quiet',
          onError,
        })
      : null,
    actionButton(
      'Revoke',
      async () => {
        if (
          !(await confirmAction(
            `Revoke ${label}?`,
            'Requests with this key are refused (401 key_revoked) on every replica within a second. This cannot be undone.',
            'Revoke key',
          ))
        )
          return;
        await api<ApiKey>('DELETE', `/admin/keys/${k.id}`);
        notify(`Revoked ${label}.`);
        await reload();
      },
      { ariaLabel: `Revoke ${label}`, variant: 'danger', onError },
    ),
  );
}

async function editLimits(k: ApiKey, reload: () => Promise<void>): Promise<void> {
  const done = await dialogForm(
    `Limits of ${k.name}`,
    [
      field('Name', h('input', { name: 'name', required: true, maxlength: 100, value: k.name })),
      field(
        'Requests per minute',
        h('input', {
          type: 'number',
          name: 'rate_limit_per_minute',
          min: 1,
          step: 1,
          value: k.rate_limit_per_minute === null ? '' : String(k.rate_limit_per_minute),
        }),
        'Empty: use the default.',
      ),
      field(
        'Requests per hour',
        h('input', {
          type: 'number',
          name: 'rate_limit_per_hour',
          min: 1,
          step: 1,
          value: k.rate_limit_per_hour === null ? '' : String(k.rate_limit_per_hour),
        }),
        'Empty: use the default.',
      ),
    ],
    'Save limits',
    async (f) => {
      await api<ApiKey>('PATCH', `/admin/keys/${k.id}`, {
        name: value(f, 'name'),
        rate_limit_per_minute: intValue(f, 'rate_limit_per_minute', true),
        rate_limit_per_hour: intValue(f, 'rate_limit_per_hour', true),
      });
    },
  );
  if (done) {
    notify(`Saved the limits of ${k.name}.`);
    await reload();
  }
}

async function rotate(k: ApiKey, reload: () => Promise<void>): Promise<void> {
  let issued: IssuedKey | undefined;
  const done = await dialogForm(
    `Rotate ${k.name}`,
    [
      h(
        'p',
        {},
        'A new key with the same name, scopes and limits is issued. The old key keeps working for the grace period, then is revoked.',
      ),
      field(
        'Grace period',
        select(
          [
            { value: '86400', label: '24 hours' },
            { value: '3600', label: '1 hour' },
            { value: '604800', label: '7 days' },
            { value: '0', label: 'None: revoke the old key now' },
          ],
          { name: 'grace' },
        ),
      ),
    ],
    'Rotate key',
    async (f) => {
      issued = await api<IssuedKey>('POST', `/admin/keys/${k.id}/rotate`, {
        grace_period_seconds: Number(value(f, 'grace')),
      });
    },
  );
  if (done && issued) {
    await showSecret(`New key for "${issued.name}"`, issued.key, ONCE);
    notify(`Rotated ${k.name}: new key ${issued.prefix}….`);
    await reload();
  }
}
