import { api } from '../api';
import { h, num, pct, replace, shortId, uid, when } from '../dom';
import type { PageDef, Provider, UpstreamSession } from '../types';
import {
  actionButton,
  badge,
  confirmAction,
  dataTable,
  errorSlot,
  facts,
  field,
  form,
  isoValue,
  notify,
  section,
  value,
} from '../ui';

interface HealthCheckSummary {
  checked: number;
  reactivated: number;
  still_quarantined: number;
  expired: number;
}

export const sessionsPage: PageDef = {
  path: 'sessions',
  title: 'Upstream sessions',
  async render(root) {
    const summary = h('div');
    const list = h('div');
    const error = errorSlot();
    const load = async () => {
      const { sessions } = await api<{ sessions: UpstreamSession[] }>('GET', '/admin/sessions');
      const count = (status: UpstreamSession['status']) =>
        sessions.filter((s) => s.status === status).length;
      replace(
        summary,
        facts([
          ['Healthy', num(count('healthy'))],
          ['Quarantined', num(count('quarantined'))],
          ['Expired', num(count('expired'))],
          ['Disabled', num(count('disabled'))],
        ]),
      );
      replace(
        list,
        dataTable(
          'Upstream sessions',
          [
            {
              header: 'Credential',
              cell: (s) => [
                h('code', {}, s.credential_preview),
                h('br'),
                h('span', { class: 'hint' }, shortId(s.id)),
              ],
            },
            { header: 'Provider', cell: (s) => s.provider },
            { header: 'Status', cell: (s) => badge(s.status) },
            { header: 'Failure rate', cell: (s) => pct(s.failure_rate), className: 'num' },
            {
              header: 'OK / failed',
              cell: (s) => `${num(s.success_count)} / ${num(s.failure_count)}`,
              className: 'num',
            },
            { header: 'Last used', cell: (s) => when(s.last_used_at) },
            { header: 'Last checked', cell: (s) => when(s.last_checked_at) },
            { header: 'Expires', cell: (s) => when(s.expires_at) },
            { header: 'Actions', cell: (s) => actions(s, load, error.show) },
          ],
          sessions,
          'No sessions yet. Add a credential below.',
        ),
      );
    };
    const providers = await api<{ data: Provider[] }>('GET', '/admin/providers').catch(() => ({
      data: [] as Provider[],
    }));
    root.append(
      h(
        'p',
        { class: 'lead' },
        'Credentials that providers with session_auth take per request. Failing sessions are quarantined and probed by the health check; credentials are never shown again after they are added.',
      ),
      summary,
      h(
        'div',
        { class: 'toolbar' },
        actionButton('Refresh', load, { variant: 'quiet' }),
        actionButton(
          'Run health check now',
          async () => {
            const r = await api<HealthCheckSummary>('POST', '/admin/sessions/health-check');
            notify(
              `Health check: ${r.checked} checked, ${r.reactivated} reactivated, ${r.still_quarantined} still quarantined, ${r.expired} expired.`,
            );
            await load();
          },
          { onError: error.show },
        ),
      ),
      error.el,
      list,
      section('Add a session', addForm(providers.data, load)),
    );
    await load();
  },
};

function actions(
  s: UpstreamSession,
  reload: () => Promise<void>,
  onError: (err: unknown) => void,
): HTMLElement {
  const label = `${s.provider} session ${shortId(s.id)}`;
  return h(
    'div',
    { class: 'actions' },
    s.status !== 'healthy'
      ? actionButton(
          'Activate',
          async () => {
            await api('PATCH', `/admin/sessions/${s.id}/activate`);
            notify(`Activated ${label}.`);
            await reload();
          },
          { ariaLabel: `Activate ${label}`, onError },
        )
      : null,
    s.status !== 'quarantined'
      ? actionButton(
          'Quarantine',
          async () => {
            await api('PATCH', `/admin/sessions/${s.id}/quarantine`);
            notify(`Quarantined ${label}.`);
            await reload();
          },
          { ariaLabel: `Quarantine ${label}`, onError },
        )
      : null,
    actionButton(
      'Delete',
      async () => {
        if (
          !(await confirmAction(
            `Delete ${label}?`,
            'The credential is removed from the pool for good.',
            'Delete',
          ))
        )
          return;
        await api('DELETE', `/admin/sessions/${s.id}`);
        notify(`Deleted ${label}.`);
        await reload();
      },
      { ariaLabel: `Delete ${label}`, variant: 'danger', onError },
    ),
  );
}

function addForm(providers: Provider[], reload: () => Promise<void>): HTMLFormElement {
  const listId = uid('providers');
  // Providers that take sessions first; any provider name is accepted.
  const names = [...providers]
    .sort((a, b) => Number(a.session_auth === 'none') - Number(b.session_auth === 'none'))
    .map((p) => p.name);
  const provider = h('input', {
    name: 'provider',
    required: true,
    list: listId,
    autocomplete: 'off',
    value: names[0] ?? '',
  });
  const credential = h('textarea', {
    name: 'cookie_text',
    required: true,
    rows: 3,
    autocomplete: 'off',
    spellcheck: 'false',
    maxlength: 8192,
  });
  const expires = h('input', { type: 'datetime-local', name: 'expires_at' });
  const note = h('input', { name: 'note', maxlength: 200 });
  return form(
    { label: 'Add a session', submitLabel: 'Add session' },
    [
      h(
        'datalist',
        { id: listId },
        names.map((n) => h('option', { value: n })),
      ),
      field('Provider', provider),
      field(
        'Credential',
        credential,
        'A cookie such as sso=… or a bearer token. Stored encrypted; only a preview is ever shown.',
      ),
      field('Expires (optional)', expires),
      field(
        'Note (optional)',
        note,
        'Kept in the session metadata, e.g. where the credential came from.',
      ),
    ],
    async (f) => {
      const body: Record<string, unknown> = {
        provider: value(f, 'provider'),
        cookie_text: value(f, 'cookie_text'),
      };
      const expiresAt = isoValue(f, 'expires_at');
      if (expiresAt) body.expires_at = expiresAt;
      const noteText = value(f, 'note');
      body.metadata = noteText
        ? { source: 'admin_console', note: noteText }
        : { source: 'admin_console' };
      const created = await api<UpstreamSession>('POST', '/admin/sessions', body);
      credential.value = '';
      note.value = '';
      notify(`Added session ${created.credential_preview} for ${created.provider}.`);
      await reload();
    },
  );
}
