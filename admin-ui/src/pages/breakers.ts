import { api } from '../api';
import { h, ms, num, pct, replace, when } from '../dom';
import type { Breaker, PageDef } from '../types';
import { actionButton, badge, dataTable, dialogForm, errorSlot, field, notify } from '../ui';

export const breakersPage: PageDef = {
  path: 'breakers',
  title: 'Circuit breakers',
  async render(root) {
    const list = h('div');
    const error = errorSlot();
    const load = async () => {
      const { data } = await api<{ data: Breaker[] }>('GET', '/admin/circuit-breakers');
      replace(
        list,
        dataTable(
          'Circuit breakers',
          [
            { header: 'Breaker', cell: (b) => h('strong', {}, b.name) },
            {
              header: 'State',
              cell: (b) => [
                badge(b.state),
                b.forced ? h('span', { class: 'hint' }, ' forced') : null,
              ],
            },
            { header: 'Failures in a row', cell: (b) => num(b.failures), className: 'num' },
            { header: 'Success rate', cell: (b) => pct(b.successRate), className: 'num' },
            { header: 'p95', cell: (b) => ms(b.p95LatencyMs), className: 'num' },
            { header: 'Opened', cell: (b) => when(b.openedAt) },
            { header: 'Next attempt', cell: (b) => when(b.nextAttemptAt) },
            {
              header: 'Actions',
              cell: (b) =>
                h(
                  'div',
                  { class: 'actions' },
                  actionButton(
                    'Reset',
                    async () => {
                      const view = await api<Breaker>(
                        'POST',
                        `/admin/circuit-breakers/${encodeURIComponent(b.name)}/reset`,
                      );
                      notify(`Breaker ${view.name} reset: ${view.state.replace('_', ' ')}.`);
                      await load();
                    },
                    { ariaLabel: `Reset breaker ${b.name}`, onError: error.show },
                  ),
                  actionButton('Force open…', () => forceOpen(b.name, load), {
                    ariaLabel: `Force breaker ${b.name} open`,
                    variant: 'quiet',
                    onError: error.show,
                  }),
                ),
            },
          ],
          data,
          'No breakers: every provider has one, so there are no providers.',
        ),
      );
    };
    root.append(
      h(
        'p',
        { class: 'lead' },
        'A breaker opens after repeated upstream failures and sends traffic to the next provider. Reset closes it at once (on every replica); force open rehearses a provider outage.',
      ),
      h('div', { class: 'toolbar' }, actionButton('Refresh', load, { variant: 'quiet' })),
      error.el,
      list,
    );
    await load();
  },
};

async function forceOpen(name: string, reload: () => Promise<void>): Promise<void> {
  const minutes = h('input', {
    type: 'number',
    name: 'minutes',
    min: 1,
    max: 1440,
    step: 1,
    value: '5',
    required: true,
    class: 'narrow',
  });
  const done = await dialogForm(
    `Force ${name} open`,
    [
      h(
        'p',
        {},
        `Requests for ${name} fall back to other providers (or fail with 503 circuit_open) until the time is up or the breaker is reset. Refused in production unless ALLOW_FORCE_OPEN=true.`,
      ),
      field('Minutes', minutes),
    ],
    'Force open',
    async () => {
      await api('POST', `/admin/circuit-breakers/${encodeURIComponent(name)}/force-open`, {
        durationMs: Number(minutes.value) * 60_000,
      });
    },
    'danger',
  );
  if (done) {
    notify(`Breaker ${name} forced open for ${minutes.value} minutes.`);
    await reload();
  }
}
