import { api } from '../api';
import { h, num, replace } from '../dom';
import type { PageDef, Provider } from '../types';
import { badge, confirmAction, dataTable, errorSlot, notify } from '../ui';

export const providersPage: PageDef = {
  path: 'providers',
  title: 'Providers',
  async render(root) {
    const list = h('div');
    const error = errorSlot();
    const load = async () => {
      const { data } = await api<{ data: Provider[] }>('GET', '/admin/providers');
      const sorted = [...data].sort(
        (a, b) => a.priority - b.priority || a.name.localeCompare(b.name),
      );
      replace(
        list,
        dataTable(
          'Providers',
          [
            {
              header: 'Provider',
              cell: (p) => [
                h('strong', {}, p.name),
                h('br'),
                h('span', { class: 'hint' }, `${p.kind}${p.base_url ? ` · ${p.base_url}` : ''}`),
              ],
            },
            { header: 'Models', cell: (p) => p.models.join(', ') || '—' },
            { header: 'Breaker', cell: (p) => badge(p.breaker_state ?? 'closed') },
            { header: 'Priority and state', cell: (p) => editor(p, load, error.show) },
          ],
          sorted,
          'No providers. Add them to PROVIDERS_FILE and restart.',
        ),
      );
    };
    root.append(
      h(
        'p',
        { class: 'lead' },
        'Requests go to the enabled provider with the lowest priority number that serves the model; equal priorities share the load. Changes apply on every replica.',
      ),
      error.el,
      list,
    );
    await load();
  },
};

/** Priority and enabled as one small form per provider: Save sends only what changed. */
function editor(
  p: Provider,
  reload: () => Promise<void>,
  showError: (err: unknown) => void,
): HTMLElement {
  const priority = h('input', {
    type: 'number',
    name: 'priority',
    min: 0,
    max: 1000000,
    step: 1,
    required: true,
    value: String(p.priority),
    class: 'narrow',
    id: `priority-${p.id}`,
  });
  const enabled = h('input', {
    type: 'checkbox',
    name: 'enabled',
    checked: p.enabled,
    id: `enabled-${p.id}`,
  });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const form = h(
    'form',
    { class: 'row-form', 'aria-label': `Routing of ${p.name}` },
    h(
      'label',
      { for: priority.id },
      'Priority',
      h('span', { class: 'visually-hidden' }, ` of ${p.name}`),
    ),
    priority,
    h(
      'span',
      { class: 'check' },
      enabled,
      h(
        'label',
        { for: enabled.id },
        'Enabled',
        h('span', { class: 'visually-hidden' }, ` ${p.name}`),
      ),
    ),
    save,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const patch: { priority?: number; enabled?: boolean } = {};
    if (Number(priority.value) !== p.priority) patch.priority = Number(priority.value);
    if (enabled.checked !== p.enabled) patch.enabled = enabled.checked;
    if (Object.keys(patch).length === 0) return notify(`${p.name}: nothing changed.`);
    if (
      patch.enabled === false &&
      !(await confirmAction(
        `Disable ${p.name}?`,
        `No request will be routed to ${p.name} until it is enabled again.`,
        'Disable',
      ))
    )
      return;
    save.disabled = true;
    try {
      const updated = await api<Provider>('PATCH', `/admin/providers/${p.id}`, patch);
      notify(
        `${updated.name}: priority ${num(updated.priority)}, ${updated.enabled ? 'enabled' : 'disabled'}.`,
      );
      await reload();
    } catch (err) {
      showError(err);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}
