import { api, Page, query } from '../api';
import { h, when } from '../dom';
import type { AuditRow, PageDef } from '../types';
import { dataTable, errorSlot, field, form, pager, value } from '../ui';

export const auditPage: PageDef = {
  path: 'audit',
  title: 'Audit log',
  async render(root) {
    const error = errorSlot();
    let filters = { action: '', actor: '' };
    const rows = pager<AuditRow>(
      (cursor) =>
        api<Page<AuditRow>>('GET', `/admin/audit${query({ ...filters, limit: 50, cursor })}`),
      (data) =>
        dataTable(
          'Audit log',
          [
            { header: 'When', cell: (r) => when(r.created_at) },
            { header: 'Actor', cell: (r) => r.actor },
            { header: 'Action', cell: (r) => h('code', {}, r.action) },
            { header: 'Target', cell: (r) => (r.target ? h('code', {}, r.target) : '—') },
            { header: 'Details', cell: (r) => details(r.details) },
          ],
          data,
          'No audit entries match.',
        ),
    );
    root.append(
      h(
        'p',
        { class: 'lead' },
        'Every admin change, from this console, the API or the CLI, newest first.',
      ),
      form(
        { label: 'Filter the audit log', submitLabel: 'Filter' },
        [
          h(
            'div',
            { class: 'grid' },
            field(
              'Action',
              h('input', {
                name: 'action',
                placeholder: 'e.g. api_key.revoke',
                autocomplete: 'off',
              }),
            ),
            field(
              'Actor',
              h('input', { name: 'actor', placeholder: 'e.g. admin', autocomplete: 'off' }),
            ),
          ),
        ],
        async (f) => {
          filters = { action: value(f, 'action'), actor: value(f, 'actor') };
          await rows.reload();
        },
      ),
      error.el,
      rows.el,
    );
    await rows.reload();
  },
};

/** One `key: value` line per top-level field (nested values as compact JSON). */
function details(value: unknown): Node | string {
  if (value === null || value === undefined || typeof value !== 'object')
    return value === undefined || value === null ? '—' : String(value);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return '—';
  const lines = entries.map(
    ([k, v]) => `${k}: ${v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v)}`,
  );
  return h('code', { class: 'details' }, lines.join('\n'));
}
