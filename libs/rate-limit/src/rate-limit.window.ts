/**
 * Window math shared by the Redis script and the per-process fallback, kept free of I/O so it
 * can be unit-tested with a fake clock.
 *
 * Each API key has two fixed windows, one minute and one hour long. A window starts with the
 * first request after the previous one expired (its counter's TTL is the time to reset), so
 * no replica needs a synchronised clock. A request passes only when BOTH windows have room, and
 * then counts in both; a rejected request counts in neither, so a client hammering a 429 does
 * not push its own reset further away.
 */

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

export interface Limits {
  perMinute: number;
  perHour: number;
}

/** One window as seen after the decision: requests counted so far and time until it resets. */
export interface WindowState {
  count: number;
  resetInMs: number;
}

export type RateLimitScope = 'key_minute' | 'key_hour';

export interface RateLimitDecision {
  allowed: boolean;
  limits: Limits;
  minute: WindowState;
  hour: WindowState;
  /** Which window refused the request (the hour when both are full: it is the longer wait). */
  scope?: RateLimitScope;
  /** How long until a request would pass again. */
  retryAfterMs?: number;
  /** 'local' while Redis is unreachable and counters are per process. */
  backend: 'redis' | 'local';
}

/** Turns the raw counts (from Lua or from memory) into a decision. */
export function toDecision(
  allowed: boolean,
  limits: Limits,
  minute: WindowState,
  hour: WindowState,
  backend: 'redis' | 'local',
): RateLimitDecision {
  if (allowed) return { allowed, limits, minute, hour, backend };
  const minuteFull = minute.count >= limits.perMinute;
  const hourFull = hour.count >= limits.perHour;
  // A request passes again only once every full window has reset.
  const retryAfterMs = Math.max(minuteFull ? minute.resetInMs : 0, hourFull ? hour.resetInMs : 0);
  return {
    allowed,
    limits,
    minute,
    hour,
    backend,
    scope: hourFull ? 'key_hour' : 'key_minute',
    retryAfterMs,
  };
}

/**
 * "12s", "60s", "6m0s", "1h0m0s": whole seconds rounded up, in the style OpenAI uses for resets
 * (a Go duration). Up to a minute it stays in seconds, so the minute window always reads "Ns".
 */
export function formatReset(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  if (total <= 60) return `${total}s`;
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** Retry-After is whole seconds; never 0, or a client would retry at once into the same 429. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * Response headers for a decision. `x-ratelimit-limit-requests` is the per-minute limit (the
 * contract). `remaining` is how many more requests will pass before a 429, so when the hour
 * window has less room than the minute window it is the hour's room, and `reset` is the time
 * until that binding window resets. The hour window is also reported on its own headers.
 */
export function rateLimitHeaders(decision: RateLimitDecision): Record<string, string> {
  const { limits, minute, hour } = decision;
  const minuteLeft = Math.max(0, limits.perMinute - minute.count);
  const hourLeft = Math.max(0, limits.perHour - hour.count);
  const hourBinds = hourLeft < minuteLeft;
  const headers: Record<string, string> = {
    'x-ratelimit-limit-requests': String(limits.perMinute),
    'x-ratelimit-remaining-requests': String(Math.min(minuteLeft, hourLeft)),
    'x-ratelimit-reset-requests': formatReset(hourBinds ? hour.resetInMs : minute.resetInMs),
    'x-ratelimit-limit-requests-hour': String(limits.perHour),
    'x-ratelimit-remaining-requests-hour': String(hourLeft),
    'x-ratelimit-reset-requests-hour': formatReset(hour.resetInMs),
  };
  if (!decision.allowed && decision.retryAfterMs !== undefined) {
    headers['retry-after'] = String(retryAfterSeconds(decision.retryAfterMs));
  }
  return headers;
}

interface LocalWindow {
  count: number;
  resetAt: number;
}

/**
 * Per-process counters with exactly the semantics of the Redis script. Used while Redis is
 * unreachable (RATE_LIMIT_ON_REDIS_FAILURE=local) and when no REDIS_URL is set. Bounded: expired
 * windows are swept once the map grows, so an outage with many keys cannot grow memory forever.
 */
export class LocalWindows {
  private readonly windows = new Map<string, LocalWindow>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly sweepAbove = 50_000,
  ) {}

  private read(key: string, at: number): WindowState {
    const window = this.windows.get(key);
    if (!window || window.resetAt <= at) return { count: 0, resetInMs: 0 };
    return { count: window.count, resetInMs: window.resetAt - at };
  }

  private bump(key: string, state: WindowState, lengthMs: number, at: number): WindowState {
    if (state.count === 0) {
      this.windows.set(key, { count: 1, resetAt: at + lengthMs });
      return { count: 1, resetInMs: lengthMs };
    }
    const window = this.windows.get(key)!;
    window.count += 1;
    return { count: window.count, resetInMs: state.resetInMs };
  }

  consume(id: string, limits: Limits): RateLimitDecision {
    const at = this.now();
    const minuteKey = `${id}:m`;
    const hourKey = `${id}:h`;
    const minute = this.read(minuteKey, at);
    const hour = this.read(hourKey, at);
    if (minute.count >= limits.perMinute || hour.count >= limits.perHour) {
      return toDecision(false, limits, minute, hour, 'local');
    }
    const decision = toDecision(
      true,
      limits,
      this.bump(minuteKey, minute, MINUTE_MS, at),
      this.bump(hourKey, hour, HOUR_MS, at),
      'local',
    );
    if (this.windows.size > this.sweepAbove) this.sweep(at);
    return decision;
  }

  private sweep(at: number): void {
    for (const [key, window] of this.windows) if (window.resetAt <= at) this.windows.delete(key);
  }

  get size(): number {
    return this.windows.size;
  }

  clear(): void {
    this.windows.clear();
  }
}
