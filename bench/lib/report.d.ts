// Types for report.js, as far as bench/stats.spec.ts uses them.
export interface RunUsage {
  serverTicks: number | null;
  rssBytes: number | null;
  dbTicks: number;
  mockTicks: number;
  syscalls?: number | null;
  otherPct: number;
  stealPct: number;
}
export interface Run {
  latencies: number[];
  ttfc?: number[];
  responses: number;
  elapsed: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  loadgenCpuSeconds: number;
}
export interface Row {
  target: string;
  rps: number;
  p50: number;
  p99: number;
  dP50?: number;
  dP99?: number;
  vsDirect: number | null;
  vsBare: number | null;
  vsPortkey: number | null;
  cpuUsPerReq: number | null;
  rssMB: number | null;
  [key: string]: unknown;
}
export type Aggregate = { target: string } & Record<string, unknown>;
export function newAggregate(target: string, c: number): Aggregate;
export function addRun(agg: Aggregate, run: Run, usage: RunUsage): void;
export function buildRows(
  aggs: Map<string, Aggregate>,
  clockTicks: number,
  hasServer: (name: string) => boolean,
): Row[];
export function soakSummary(
  samples: Array<{ t: number; rssBytes: number }>,
  seconds: number,
): { firstMB: number | null; lastMB: number | null; maxMB: number | null; drift: number };
