import { api, Page, query } from '../api';
import { h, num, replace, shortId, when } from '../dom';
import type { Job, PageDef, Stats } from '../types';
import {
  badge,
  confirmAction,
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
} from '../ui';

const STATUSES = ['', 'pending', 'generating', 'succeeded', 'failed', 'cancelled'];

export const jobsPage: PageDef = {
  path: 'jobs',
  title: 'Jobs',
  async render(root) {
    const error = errorSlot();
    const depth = h('div');
    const status = select(
      STATUSES.map((s) => ({ value: s, label: s === '' ? 'All statuses' : s })),
      { name: 'status' },
    );
    const jobs = pager<Job>(
      (cursor) =>
        api<Page<Job>>('GET', `/admin/jobs${query({ status: status.value, limit: 50, cursor })}`),
      (rows) =>
        dataTable(
          'Jobs',
          [
            { header: 'Job', cell: (j) => h('code', { title: j.id }, shortId(j.id)) },
            { header: 'Type', cell: (j) => j.type },
            { header: 'Model', cell: (j) => j.model ?? '—' },
            { header: 'Status', cell: (j) => badge(j.status) },
            { header: 'Attempts', cell: (j) => num(j.attempts), className: 'num' },
            { header: 'Credits', cell: (j) => num(j.credits_charged), className: 'num' },
            { header: 'Created', cell: (j) => when(j.created_at) },
            { header: 'Finished', cell: (j) => when(j.completed_at) },
            { header: 'Error', cell: (j) => j.error ?? '—' },
          ],
          rows,
          'No jobs with this status.',
        ),
    );
    const loadDepth = async () => {
      const stats = await api<Stats>('GET', '/admin/stats');
      const q = stats.queue;
      replace(
        depth,
        q
          ? facts([
              ['Pending', num(q.pending)],
              ['Running', num(q.generating)],
              ['Stuck', h('span', { class: q.stuck > 0 ? 'warning-text' : '' }, num(q.stuck))],
              ['Oldest pending', q.pending > 0 ? `${num(q.oldest_pending_seconds)} s` : '—'],
            ])
          : h('p', { class: 'warning' }, 'The queue depth is not available right now.'),
      );
    };
    status.addEventListener('change', () => void jobs.reload().catch(error.show));
    root.append(
      h(
        'p',
        { class: 'lead' },
        'Async generation jobs. Jobs running longer than the stuck timeout are failed and refunded by the reaper; clear them now if they block users.',
      ),
      depth,
      section(
        'Clear stuck jobs',
        form(
          { label: 'Clear stuck jobs', submitLabel: 'Clear stuck jobs', variant: 'danger' },
          [
            field(
              'Older than (minutes)',
              h('input', {
                type: 'number',
                name: 'older_than_minutes',
                min: 1,
                step: 1,
                class: 'narrow',
              }),
              'Empty: the configured stuck timeout.',
            ),
          ],
          async (f) => {
            const minutes = intValue(f, 'older_than_minutes');
            const text =
              minutes === undefined
                ? 'older than the stuck timeout'
                : `older than ${minutes} minutes`;
            if (
              !(await confirmAction(
                'Clear stuck jobs?',
                `Pending or running jobs ${text} are marked failed and their credits refunded.`,
                'Clear jobs',
              ))
            )
              return;
            const result = await api<{ cleared: number }>(
              'POST',
              '/admin/jobs/clear-stuck',
              minutes === undefined ? {} : { older_than_minutes: minutes },
            );
            notify(`Cleared ${num(result.cleared)} stuck job${result.cleared === 1 ? '' : 's'}.`);
            await Promise.all([loadDepth(), jobs.reload()]);
          },
        ),
      ),
      section('Jobs', h('div', { class: 'toolbar' }, field('Status', status)), error.el, jobs.el),
    );
    await Promise.all([loadDepth(), jobs.reload()]);
  },
};
