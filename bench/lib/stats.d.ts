// Types for stats.js (plain JavaScript so that `node bench/run.js` needs no build step).
export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}
export interface Column {
  title: string;
  align?: 'left' | 'right';
}
export function percentile(sorted: ArrayLike<number>, p: number): number;
export function summarize(samples: Iterable<number> | ArrayLike<number>): Summary;
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null;
export function spread(values: number[]): number;
export function drift(values: number[]): number;
export function fmt(x: number | null | undefined, digits?: number): string;
export function signed(x: number | null | undefined, digits?: number): string;
export function times(x: number | null | undefined, digits?: number): string;
export function markdownTable(columns: Column[], rows: Array<Array<string | number>>): string;
export function replaceBetween(
  text: string,
  startMarker: string,
  endMarker: string,
  block: string,
): string;
