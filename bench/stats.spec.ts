// The benchmark's own arithmetic and formatting. No load, no timing: npm test stays
// deterministic; the benchmark itself runs with `npm run bench`.
import {
  drift,
  fmt,
  markdownTable,
  percentile,
  ratio,
  replaceBetween,
  signed,
  spread,
  summarize,
  times,
} from './lib/stats';
import { addRun, buildRows, newAggregate, soakSummary } from './lib/report';
import { readSettings } from './lib/settings';

describe('percentile (nearest rank)', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100

  it('picks the smallest value with at least p % of samples at or below it', () => {
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 90)).toBe(90);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)).toBe(10);
    expect(percentile([7, 8], 50)).toBe(7);
  });

  it('handles the edges', () => {
    expect(percentile([], 50)).toBeNaN();
    expect(percentile([42], 99)).toBe(42);
    expect(percentile([3, 4, 5], 0)).toBe(3);
  });

  it('summarize sorts numerically, not as strings', () => {
    const s = summarize([10, 9, 100, 2, 1.5]);
    expect(s).toMatchObject({ count: 5, p50: 9, p99: 100, max: 100 });
    expect(s.mean).toBeCloseTo(24.5, 10);
    expect(summarize([]).count).toBe(0);
  });
});

describe('ratios and spreads', () => {
  it('ratio is null when a side is missing or zero', () => {
    expect(ratio(300, 100)).toBe(3);
    expect(ratio(1, 0)).toBeNull();
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(2, undefined)).toBeNull();
    expect(ratio(NaN, 2)).toBeNull();
  });

  it('spread is (max - min) / mean; drift is last vs first', () => {
    expect(spread([90, 110])).toBeCloseTo(0.2, 10);
    expect(spread([5])).toBe(0);
    expect(drift([100, 120, 105])).toBeCloseTo(0.05, 10);
    expect(drift([100])).toBe(0);
  });
});

describe('formatting', () => {
  it('numbers, signs and ratios', () => {
    expect(fmt(1.234)).toBe('1.23');
    expect(fmt(2600, 0)).toBe('2600');
    expect(fmt(null)).toBe('-');
    expect(fmt(NaN)).toBe('-');
    expect(signed(0.354)).toBe('+0.35');
    expect(signed(-1.2)).toBe('-1.20');
    expect(signed(0)).toBe('+0.00');
    expect(signed(-0.001)).toBe('-0.00');
    expect(times(3.456)).toBe('3.46x');
    expect(times(null)).toBe('-');
  });

  it('markdownTable aligns columns and escapes pipes', () => {
    const table = markdownTable(
      [{ title: 'target' }, { title: 'req/s', align: 'right' }],
      [
        ['direct', '2600'],
        ['a|b', '7'],
      ],
    );
    expect(table).toBe(
      ['| target | req/s |', '|---|---:|', '| direct | 2600 |', '| a\\|b | 7 |'].join('\n'),
    );
  });

  it('replaceBetween swaps the marked block and keeps the rest', () => {
    const doc = 'intro\n<!-- s -->\nold\n<!-- e -->\noutro\n';
    expect(replaceBetween(doc, '<!-- s -->', '<!-- e -->', 'new\n')).toBe(
      'intro\n<!-- s -->\nnew\n<!-- e -->\noutro\n',
    );
    expect(replaceBetween('intro\n', '<!-- s -->', '<!-- e -->', 'x')).toBe(
      'intro\n\n<!-- s -->\nx\n<!-- e -->\n',
    );
  });
});

describe('rows of a scenario', () => {
  const run = (responses: number, latencies: number[]) => ({
    latencies,
    responses,
    elapsed: 10,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    loadgenCpuSeconds: 1,
  });
  const usage = (serverTicks: number | null) => ({
    serverTicks,
    rssBytes: 100 * 1048576,
    dbTicks: 0,
    mockTicks: 0,
    otherPct: 0,
    stealPct: 0,
  });

  it('computes deltas against direct and ratios against direct, bare and portkey', () => {
    const aggs = new Map(
      ['direct', 'bare', 'portkey', 'switchyard'].map((n) => [n, newAggregate(n, 64)]),
    );
    addRun(aggs.get('direct')!, run(10000, [1, 1, 1, 2]), usage(null));
    addRun(aggs.get('bare')!, run(4000, [2, 2, 2, 3]), usage(100));
    addRun(aggs.get('portkey')!, run(500, [9, 9, 9, 20]), usage(100));
    addRun(aggs.get('switchyard')!, run(2000, [3, 3, 3, 5]), usage(100));
    const rows = buildRows(aggs, 100, (n) => n !== 'direct');
    const sy = rows.find((r) => r.target === 'switchyard')!;
    expect(sy.rps).toBe(200);
    expect(sy.dP50).toBe(2);
    expect(sy.dP99).toBe(3);
    expect(sy.vsDirect).toBeCloseTo(0.2, 10);
    expect(sy.vsBare).toBeCloseTo(0.5, 10);
    expect(sy.vsPortkey).toBeCloseTo(4, 10);
    // 100 ticks at 100 Hz = 1 s of CPU over 2000 responses = 500 µs each
    expect(sy.cpuUsPerReq).toBeCloseTo(500, 6);
    expect(sy.rssMB).toBe(100);
    const direct = rows.find((r) => r.target === 'direct')!;
    expect(direct.vsDirect).toBeNull();
    expect(direct.cpuUsPerReq).toBeNull();
    expect(rows.find((r) => r.target === 'bare')!.vsBare).toBeNull();
  });

  it('soak drift compares thirds, so a GC sawtooth is not growth', () => {
    const mb = 1048576;
    const saw = [200, 260, 210, 250, 205, 255].map((v, i) => ({
      t: 20 + 10 * i,
      rssBytes: v * mb,
    }));
    const s = soakSummary(saw, 100);
    expect(s.firstMB).toBe(230);
    expect(s.lastMB).toBe(230);
    expect(s.drift).toBe(0);
    expect(s.maxMB).toBe(260);
  });

  it('soak drift starts after the first 10 % of the run', () => {
    const mb = 1048576;
    const s = soakSummary(
      [
        { t: 5, rssBytes: 80 * mb },
        { t: 20, rssBytes: 150 * mb },
        { t: 60, rssBytes: 160 * mb },
        { t: 120, rssBytes: 165 * mb },
      ],
      120,
    );
    expect(s.firstMB).toBe(150);
    expect(s.lastMB).toBe(165);
    expect(s.maxMB).toBe(165);
    expect(s.drift).toBeCloseTo(0.1, 10);
  });
});

describe('candidate settings', () => {
  it('measures this build with changed settings when only BENCH_CANDIDATE_ENV is given', () => {
    const s = readSettings({ BENCH_CANDIDATE_ENV: 'CREDIT_SETTLE_AFTER_RESPONSE=true  A=b=c' });
    expect(s.candidateEnv).toEqual({ CREDIT_SETTLE_AFTER_RESPONSE: 'true', A: 'b=c' });
    expect(s.candidateMain).toMatch(/dist\/apps\/gateway\/src\/main\.js$/);
    const chat = s.scenarios.find((sc) => sc.id === 'chat-c64');
    expect(chat?.targets).toContain('switchyard-candidate');
  });

  it('measures this build with other node flags when only BENCH_CANDIDATE_NODE_ARGS is given', () => {
    const s = readSettings({ BENCH_CANDIDATE_NODE_ARGS: ' --single-threaded-gc  --foo=1 ' });
    expect(s.candidateNodeArgs).toEqual(['--single-threaded-gc', '--foo=1']);
    expect(s.candidateEnv).toEqual({});
    expect(s.candidateMain).toMatch(/dist\/apps\/gateway\/src\/main\.js$/);
  });

  it('has no candidate without any setting, and refuses a malformed pair', () => {
    expect(readSettings({}).candidateMain).toBeNull();
    expect(() => readSettings({ BENCH_CANDIDATE_ENV: 'NOEQUALS' })).toThrow(/NAME=value/);
  });
});

describe('profile settings', () => {
  it('profiles the full pipeline at c=64 with a 0 ms upstream unless told otherwise', () => {
    const [plain] = readSettings({ BENCH_PROFILE: '1' }).scenarios;
    expect(plain).toMatchObject({ id: 'profile', c: 64, delayMs: 0, targets: ['switchyard'] });
    const [told] = readSettings({
      BENCH_PROFILE: '1',
      PROFILE_TARGET: 'switchyard-nobill',
      PROFILE_CONCURRENCY: '1',
      PROFILE_DELAY_MS: '50',
    }).scenarios;
    expect(told).toMatchObject({ c: 1, delayMs: 50, targets: ['switchyard-nobill'] });
    expect(told.title).toBe('CPU profile: switchyard-nobill, c=1, upstream 50 ms, 20 s');
  });
});
