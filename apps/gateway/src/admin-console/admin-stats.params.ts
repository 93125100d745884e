import { ApiError } from '@app/observability';

const DEFAULT_WINDOW_SECONDS = 300;
const MAX_WINDOW_SECONDS = 86_400;

/** `?window_seconds=`: whole seconds from a minute to a day (default 5 minutes). */
export function parseWindow(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_WINDOW_SECONDS;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 60 || n > MAX_WINDOW_SECONDS)
    throw ApiError.badRequest(
      `window_seconds must be a whole number of seconds from 60 to ${MAX_WINDOW_SECONDS}`,
      'window_seconds',
    );
  return n;
}

/*
 * Consoles poll this every few seconds; several admins (or tabs) share one answer per replica,
 * so the request-log aggregates run at most once per reuse period: 2 s, longer for long windows
 * (10 ms per second of window, at most a minute: a day's percentiles are not worth recomputing
 * every 5 s).
 */
const MIN_REUSE_MS = 2_000;
const MAX_REUSE_MS = 60_000;

export function reuseMs(windowSeconds: number): number {
  return Math.min(MAX_REUSE_MS, Math.max(MIN_REUSE_MS, windowSeconds * 10));
}
