'use strict';
// Pure helpers of the benchmark: percentiles, summaries, ratios and Markdown tables.
// Kept free of I/O so that bench/stats.spec.ts can check them exactly.

/**
 * Nearest-rank percentile of an ascending array: the smallest value such that at least
 * p % of the samples are <= it. NaN for an empty array.
 */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  if (p <= 0) return sorted[0];
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** p50/p90/p99/mean/max of raw samples (not modified). */
function summarize(samples) {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    mean: sorted.length ? sum / sorted.length : NaN,
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}

/** a / b, or null when either side is missing or b is 0. */
function ratio(a, b) {
  if (a == null || b == null || Number.isNaN(a) || Number.isNaN(b) || b === 0) return null;
  return a / b;
}

/** (max - min) / mean of a list, 0 for fewer than two values. */
function spread(values) {
  if (values.length < 2) return 0;
  const mean = values.reduce((x, y) => x + y, 0) / values.length;
  if (mean === 0) return 0;
  return (Math.max(...values) - Math.min(...values)) / mean;
}

/** Relative change from the first to the last value, e.g. 0.05 for +5 %. */
function drift(values) {
  if (values.length < 2 || values[0] === 0) return 0;
  return (values[values.length - 1] - values[0]) / values[0];
}

/** Fixed decimals, '-' for missing values. */
function fmt(x, digits = 2) {
  return x == null || Number.isNaN(x) ? '-' : x.toFixed(digits);
}

/** Like fmt, with an explicit sign: '+0.35', '-1.20'. */
function signed(x, digits = 2) {
  if (x == null || Number.isNaN(x)) return '-';
  const s = x.toFixed(digits);
  return x >= 0 && !s.startsWith('-') ? `+${s}` : s;
}

/** '3.41x' style ratio, '-' when missing. */
function times(x, digits = 2) {
  return x == null || Number.isNaN(x) ? '-' : `${x.toFixed(digits)}x`;
}

/**
 * A GitHub Markdown table. columns: [{ title, align: 'left'|'right' }]; rows: arrays of
 * cells (already strings). Pipes inside cells are escaped so a cell cannot break the table.
 */
function markdownTable(columns, rows) {
  const esc = (cell) => String(cell ?? '').replace(/\|/g, '\\|');
  const head = `| ${columns.map((c) => esc(c.title)).join(' | ')} |`;
  const rule = `|${columns.map((c) => (c.align === 'right' ? '---:' : '---')).join('|')}|`;
  const body = rows.map((r) => `| ${columns.map((_, i) => esc(r[i])).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}

/** Replaces the text between two marker lines (kept) or appends the block when absent. */
function replaceBetween(text, startMarker, endMarker, block) {
  const start = text.indexOf(startMarker);
  const end = text.indexOf(endMarker);
  const inner = `${startMarker}\n${block.replace(/\n+$/, '')}\n${endMarker}`;
  if (start === -1 || end === -1 || end < start) {
    return `${text.replace(/\n*$/, '\n\n')}${inner}\n`;
  }
  return text.slice(0, start) + inner + text.slice(end + endMarker.length);
}

module.exports = {
  percentile,
  summarize,
  ratio,
  spread,
  drift,
  fmt,
  signed,
  times,
  markdownTable,
  replaceBetween,
};
