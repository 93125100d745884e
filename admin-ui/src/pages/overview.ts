import { api, query } from '../api';
import { h, ms, num, pct, replace, svg, dec } from '../dom';
import type { PageDef, Stats } from '../types';
import { badge, dataTable, describe, field, section, select } from '../ui';

const REFRESH_MS = 5_000;

export const overviewPage: PageDef = {
  path: 'overview',
  title: 'Overview',
  async render(root) {
    const windowSelect = select(
      [
        { value: '300', label: 'Last 5 minutes' },
        { value: '900', label: 'Last 15 minutes' },
        { value: '3600', label: 'Last hour' },
        { value: '86400', label: 'Last 24 hours' },
      ],
      { name: 'window' },
    );
    const pause = h(
      'button',
      { type: 'button', class: 'quiet', 'aria-pressed': 'false' },
      'Pause updates',
    );
    const updated = h('p', { class: 'hint updated' });
    const body = h('div', { class: 'overview' });
    let timer: number | undefined;
    let paused = false;
    let left = false;
    // Bumped by every refresh: an answer that is no longer the latest (the window changed, or
    // the tab came back, while it was in flight) is dropped and schedules nothing, so a slow
    // answer never shows under another window's label and the poll never runs twice over.
    let latest = 0;

    const refresh = async () => {
      window.clearTimeout(timer);
      const mine = ++latest;
      try {
        const stats = await api<Stats>(
          'GET',
          `/admin/stats${query({ window_seconds: windowSelect.value })}`,
        );
        if (left || mine !== latest) return;
        draw(body, stats, windowSelect.selectedOptions[0]?.textContent ?? '');
        updated.textContent = `Updated ${new Date(stats.generated_at).toLocaleTimeString()}${paused ? ' · paused' : ''}`;
      } catch (err) {
        if (left || mine !== latest) return;
        updated.textContent = `Could not refresh: ${describe(err)}`;
      }
      // Poll only while the tab is visible and not paused: an idle console costs nothing.
      if (!left && !paused && document.visibilityState === 'visible')
        timer = window.setTimeout(refresh, REFRESH_MS);
    };
    const onVisible = () => {
      if (document.visibilityState === 'visible' && !paused) void refresh();
    };
    pause.addEventListener('click', () => {
      paused = !paused;
      pause.setAttribute('aria-pressed', String(paused));
      pause.textContent = paused ? 'Resume updates' : 'Pause updates';
      if (paused) window.clearTimeout(timer);
      else void refresh();
    });
    windowSelect.addEventListener('change', () => void refresh());
    document.addEventListener('visibilitychange', onVisible);

    root.append(
      h('div', { class: 'toolbar' }, field('Window', windowSelect), pause, updated),
      body,
    );
    await refresh();
    return () => {
      left = true;
      window.clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  },
};

function draw(body: HTMLElement, stats: Stats, windowLabel: string): void {
  const t = stats.traffic;
  const warn =
    stats.unavailable.length > 0
      ? h(
          'p',
          { class: 'warning' },
          `Not available right now: ${stats.unavailable.join(', ')}. The database or Redis may be unreachable; see /health/detailed.`,
        )
      : null;
  const s = stats.sessions?.by_status;
  const b = stats.breakers;
  const q = stats.queue;
  const cards = h(
    'ul',
    { class: 'cards', 'aria-label': 'Key numbers' },
    card(
      'Requests / min',
      t ? dec(t.requests_per_minute) : '—',
      t ? `${num(t.requests)} requests · ${windowLabel.toLowerCase()}` : '',
    ),
    card(
      'Error rate (5xx)',
      t ? pct(t.error_rate) : '—',
      t
        ? `${num(t.errors)} errors · ${num(t.client_errors)} client errors · ${num(t.rate_limited)} rate-limited`
        : '',
      t !== null && (t.error_rate ?? 0) > 0.05,
    ),
    card(
      'p95 latency',
      t ? ms(t.p95_latency_ms) : '—',
      t ? `p50 ${ms(t.p50_latency_ms)} · p99 ${ms(t.p99_latency_ms)}` : '',
    ),
    card(
      'Cache hit rate',
      t ? pct(t.cache_hit_rate) : '—',
      stats.cache
        ? `${t ? `${num(t.cached)} answers from cache · ` : ''}all time ${pct(stats.cache.hit_rate)}, ${num(stats.cache.keys)} keys`
        : '',
    ),
    card('Credits spent', t ? num(t.credits_spent) : '—', windowLabel),
    card(
      'Healthy sessions',
      s ? num(s.healthy) : '—',
      s ? `${num(s.quarantined)} quarantined · ${num(s.expired)} expired` : '',
      s !== undefined && s.quarantined + s.expired > 0 && s.healthy === 0,
    ),
    card(
      'Open breakers',
      b ? num(b.open) : '—',
      b ? `${num(b.closed)} closed · ${num(b.half_open)} half open` : '',
      b !== null && b.open > 0,
    ),
    card(
      'Job queue',
      q ? num(q.pending + q.generating) : '—',
      q ? `${num(q.pending)} pending · ${num(q.generating)} running · ${num(q.stuck)} stuck` : '',
      q !== null && q.stuck > 0,
    ),
    card(
      'State store',
      stats.redis.mode === 'redis'
        ? 'Redis'
        : stats.redis.mode === 'memory'
          ? 'Memory'
          : 'Fallback',
      stats.redis.mode === 'memory-fallback'
        ? 'Redis unreachable: per-process memory'
        : stats.redis.mode === 'memory'
          ? 'single process, no REDIS_URL'
          : 'shared by all replicas',
      stats.redis.mode === 'memory-fallback',
    ),
  );
  const breakers =
    b && b.data.length > 0
      ? h(
          'ul',
          { class: 'inline-list', 'aria-label': 'Breakers' },
          b.data.map((x) => h('li', {}, x.name, ' ', badge(x.state))),
        )
      : null;
  replace(
    body,
    warn,
    cards,
    t ? section('Requests per minute (last 30 minutes)', chart(t.series.points)) : null,
    t
      ? section(
          'Providers',
          breakers,
          dataTable(
            'Traffic by provider',
            [
              { header: 'Provider', cell: (p) => p.provider },
              { header: 'Requests', cell: (p) => num(p.requests), className: 'num' },
              { header: 'Errors', cell: (p) => num(p.errors), className: 'num' },
              { header: 'p95', cell: (p) => ms(p.p95_latency_ms), className: 'num' },
            ],
            t.by_provider,
            'No upstream traffic in this window.',
          ),
        )
      : null,
  );
}

function card(label: string, value: string, detail: string, alert = false): HTMLElement {
  return h(
    'li',
    { class: alert ? 'card alert' : 'card' },
    h('span', { class: 'card-label' }, label),
    h('span', { class: 'card-value' }, value),
    detail ? h('span', { class: 'card-detail' }, detail) : null,
  );
}

/** Bars of requests per minute with the 5xx part in the error colour; summarised for screen readers. */
function chart(points: { at: string; requests: number; errors: number }[]): Element {
  const width = 600;
  const height = 120;
  const busiest = Math.max(0, ...points.map((p) => p.requests));
  // At least 1 so an idle half hour draws empty bars instead of dividing by zero.
  const max = Math.max(1, busiest);
  const slot = width / Math.max(1, points.length);
  const total = points.reduce((sum, p) => sum + p.requests, 0);
  const errors = points.reduce((sum, p) => sum + p.errors, 0);
  const last = points[points.length - 1];
  const summary = `${num(total)} requests and ${num(errors)} server errors in the last ${points.length} minutes; busiest minute ${num(busiest)}, this minute ${num(last?.requests ?? 0)}.`;
  const bars = points.map((p) => {
    const hReq = (p.requests / max) * (height - 4);
    const hErr = (p.errors / max) * (height - 4);
    const x = slot * 0.1 + slot * points.indexOf(p);
    const w = slot * 0.8;
    return svg(
      'g',
      {},
      svg(
        'title',
        {},
        `${new Date(p.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: ${p.requests} requests, ${p.errors} errors`,
      ),
      svg('rect', { x, y: height - hReq, width: w, height: hReq, class: 'bar' }),
      p.errors > 0
        ? svg('rect', { x, y: height - hErr, width: w, height: hErr, class: 'bar-error' })
        : null,
    );
  });
  return h(
    'figure',
    { class: 'chart' },
    svg(
      'svg',
      { viewBox: `0 0 ${width} ${height}`, 'aria-hidden': 'true', preserveAspectRatio: 'none' },
      bars,
    ),
    h('figcaption', { class: 'hint' }, summary),
  );
}
