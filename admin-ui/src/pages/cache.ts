import { api, query } from '../api';
import { bytes, h, num, pct, replace } from '../dom';
import type { CacheStats, PageDef } from '../types';
import {
  actionButton,
  confirmAction,
  errorSlot,
  facts,
  field,
  form,
  notify,
  section,
  value,
} from '../ui';

export const cachePage: PageDef = {
  path: 'cache',
  title: 'Response cache',
  async render(root) {
    const error = errorSlot();
    const stats = h('div');
    const load = async () => {
      const s = await api<CacheStats>('GET', '/admin/cache/stats');
      replace(
        stats,
        facts([
          ['Hit rate', pct(s.hit_rate)],
          ['Hits', num(s.hits)],
          ['Misses', num(s.misses)],
          ['Bypasses', num(s.bypasses)],
          ['Entries', num(s.keys)],
          ['Stored answers', bytes(s.memory_bytes)],
          ['Backend', s.backend === 'redis' ? 'Redis (all replicas)' : 'Memory (this replica)'],
          ['Lifetime', s.ttl_seconds > 0 ? `${num(s.ttl_seconds)} s` : 'cache off'],
        ]),
      );
    };
    root.append(
      h(
        'p',
        { class: 'lead' },
        'Deterministic chat completions are answered from the cache. Clearing it is safe: the next requests go upstream again.',
      ),
      section(
        'Statistics',
        h(
          'div',
          { class: 'toolbar' },
          actionButton('Refresh', load, { variant: 'quiet', onError: error.show }),
        ),
        error.el,
        stats,
      ),
      section(
        'Clear',
        form(
          { label: 'Clear the cache', submitLabel: 'Clear cache', variant: 'danger' },
          [
            h('p', { class: 'hint' }, 'Leave both empty to remove every entry.'),
            h(
              'div',
              { class: 'grid' },
              field(
                'User id (optional)',
                h('input', {
                  name: 'user_id',
                  autocomplete: 'off',
                  spellcheck: 'false',
                  // A whole UUID. (Browsers compile pattern with the v flag, where a bare '-'
                  // at the end of a class is a syntax error and the check is silently dropped.)
                  pattern:
                    '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
                }),
                "Only that user's own entries.",
              ),
              field(
                'Model (optional)',
                h('input', { name: 'model', autocomplete: 'off', maxlength: 200 }),
              ),
            ),
          ],
          async (f) => {
            const selector = { user_id: value(f, 'user_id'), model: value(f, 'model') };
            const scope =
              selector.user_id || selector.model ? 'the matching entries' : 'every entry';
            if (
              !(await confirmAction(
                'Clear the cache?',
                `This removes ${scope} on every replica.`,
                'Clear',
              ))
            )
              return;
            const result = await api<{ deleted: number }>(
              'DELETE',
              `/admin/cache${query(selector)}`,
            );
            notify(
              `Removed ${num(result.deleted)} cache entr${result.deleted === 1 ? 'y' : 'ies'}.`,
            );
            f.reset();
            await load();
          },
        ),
      ),
    );
    await load();
  },
};
