import { isIP } from 'node:net';
import { parseExpression } from 'cron-parser';
import { z } from 'zod';
import { maskUrlCredentials } from './config-redaction';

/**
 * The longest delay Node's setTimeout/setInterval keep: a longer one fires after 1 ms (with a
 * TimeoutOverflowWarning), which turned a "practically never" interval into a busy loop.
 */
const MAX_TIMER_MS = 2_147_483_647;
const MAX_TIMER_SECONDS = Math.floor(MAX_TIMER_MS / 1000);
/** Postgres `integer`: the SQL casts and make_interval() arguments these values become. */
const MAX_PG_INT = 2_147_483_647;
/**
 * Retention in days: about 2700 years, "keep everything". Far more overflows the cutoff date
 * (JavaScript's Date, Postgres' timestamps end in 4713 BC) and every retention run failed.
 */
const MAX_RETENTION_DAYS = 1_000_000;

const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'expected true or false' })
    .optional()
    .transform((v) => (v === undefined ? fallback : ['true', '1', 'yes'].includes(v)));

const int = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `expected an integer between ${min} and ${max}` });
        return z.NEVER;
      }
      return n;
    });

const url = (protocols: string[]) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      try {
        const parsed = new URL(v);
        if (!protocols.includes(parsed.protocol)) throw new Error();
        return v;
      } catch {
        ctx.addIssue({
          code: 'custom',
          message: `expected a URL starting with ${protocols.join(' or ')}//`,
        });
        return z.NEVER;
      }
    });

/**
 * Durations such as "30m", "12h", "45s", "2d" or plain seconds; returned in seconds. Zero is
 * refused: a token that expires when it is issued, a failed-login window that never counts.
 */
const duration = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = v === undefined || v === '' ? fallback : v;
      const match = /^(\d+)\s*(s|m|h|d)?$/.exec(raw.trim());
      const unit = { s: 1, m: 60, h: 3600, d: 86400 }[match?.[2] as 's' | 'm' | 'h' | 'd'] ?? 1;
      const seconds = match ? Number(match[1]) * unit : 0;
      if (seconds < 1) {
        ctx.addIssue({
          code: 'custom',
          message: 'expected a duration of at least 1 s such as 30m, 12h, 45s or seconds',
        });
        return z.NEVER;
      }
      return seconds;
    });

/** A fraction between 0 and 1 (e.g. 0.5). */
const ratio = (fallback: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0 || n > 1) {
        ctx.addIssue({ code: 'custom', message: 'expected a number above 0 and at most 1' });
        return z.NEVER;
      }
      return n;
    });

const hexKey = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === '') return undefined;
    if (!/^[0-9a-fA-F]{64}$/.test(v)) {
      ctx.addIssue({ code: 'custom', message: 'expected 32 bytes as 64 hex characters' });
      return z.NEVER;
    }
    return v.toLowerCase();
  });

const csv = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  );

/** Redis Sentinel addresses: `host:port` pairs (`[v6]:port` for IPv6), comma-separated. */
const hostPorts = csv.transform((list, ctx) => {
  const addresses: Array<{ host: string; port: number }> = [];
  for (const entry of list) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `expected host:port pairs, not ${entry}` });
      return z.NEVER;
    }
    addresses.push({ host: match[1].replace(/^\[|\]$/g, ''), port });
  }
  return addresses;
});

/** Browser origins for CORS: `*` or exact origins (`https://app.example.com`, no path). */
const origins = csv.superRefine((list, ctx) => {
  for (const entry of list) {
    if (entry === '*') continue;
    let origin = '';
    try {
      origin = new URL(entry).origin;
    } catch {
      // reported below
    }
    if (origin !== entry)
      ctx.addIssue({
        code: 'custom',
        message: `expected origins such as https://app.example.com (no path or trailing slash), not ${maskUrlCredentials(entry)}`,
      });
  }
});

/** Provider URL allow-list: `*`, an origin, a host name, or `*.` + a domain. */
const urlAllowlist = csv.superRefine((list, ctx) => {
  for (const entry of list) {
    const ok =
      entry === '*' ||
      /^https?:\/\/[^/\s]+$/i.test(entry) ||
      /^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(entry);
    if (!ok)
      ctx.addIssue({
        code: 'custom',
        message: `expected *, an origin (https://api.example.com), a host or *.domain, not ${maskUrlCredentials(entry)}`,
      });
  }
});

/** fastify's (proxy-addr's) names for address ranges, accepted in TRUST_PROXY like a CIDR. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** `10.0.0.0/8`, `fd00::/8`, `10.0.0.0/255.0.0.0` or a plain address, as proxy-addr reads them. */
function isAddressOrRange(entry: string): boolean {
  if (NAMED_RANGES.has(entry)) return true;
  const slash = entry.lastIndexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return false;
  if (slash < 0) return true;
  const range = entry.slice(slash + 1);
  if (/^\d+$/.test(range)) return Number(range) >= 1 && Number(range) <= (family === 4 ? 32 : 128);
  if (family !== 4 || isIP(range) !== 4) return false;
  // A netmask: ones then zeros, and not all zeros.
  const bits = range
    .split('.')
    .map((octet) => Number(octet).toString(2).padStart(8, '0'))
    .join('');
  return /^1+0*$/.test(bits);
}

/**
 * Whose X-Forwarded-For to believe: false, true, a hop count, or proxy addresses/CIDRs. Trusting
 * every hop lets a client pick its own IP and dodge per-IP limits, so the default trusts none.
 * Checked here: fastify throws on a bad entry only while the server is built (a stack trace).
 */
const trustProxy = z
  .string()
  .default('false')
  .transform((raw, ctx): boolean | number | string[] => {
    const value = raw.trim();
    if (value === '' || value === 'false') return false;
    if (value === 'true') return true;
    if (/^\d+$/.test(value)) return Number(value);
    const entries = value.split(',').map((entry) => entry.trim());
    if (!entries.every(isAddressOrRange))
      ctx.addIssue({
        code: 'custom',
        message:
          'expected false, true, a hop count, or comma-separated proxy addresses/CIDRs such as 10.0.0.0/8',
      });
    return entries;
  });

/** A 5-field cron expression that pg-boss (cron-parser) accepts, in UTC. */
const cron = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((raw, ctx) => {
      const value = raw.trim();
      let valid = value.split(/\s+/).length === 5;
      try {
        if (valid) parseExpression(value, { tz: 'UTC' });
      } catch {
        valid = false;
      }
      if (!valid)
        ctx.addIssue({
          code: 'custom',
          message: `expected a 5-field cron expression such as "${fallback}" (minute hour day month weekday)`,
        });
      return value;
    });

export const envSchema = z.object({
  NODE_ENV: z
    .enum(['development', 'production', 'test'], {
      message: 'expected development, production or test',
    })
    .default('development'),
  PORT: int(8000, 0, 65535),
  HOST: z.string().default('0.0.0.0'),
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  DB_POOL_MAX_SIZE: int(20, 1, 1000),
  // The client gives up 1 s after statement_timeout (query_timeout), on a Node timer.
  DB_STATEMENT_TIMEOUT_MS: int(10000, 100, MAX_TIMER_MS - 1000),
  DB_CONNECT_TIMEOUT_MS: int(3000, 100, MAX_TIMER_MS),
  EMBEDDED_PG_DIR: z.string().default('./.data/pg'),
  EMBEDDED_PG_PORT: int(54329, 1, 65535),
  REDIS_URL: url(['redis:', 'rediss:']),
  REDIS_REQUIRED: bool(false),
  REDIS_KEY_PREFIX: z.string().default('sy:'),
  REDIS_SENTINELS: hostPorts,
  REDIS_SENTINEL_NAME: z.string().default('mymaster'),
  REDIS_SENTINEL_PASSWORD: z.string().optional(),
  JWT_SECRET: z.string().optional(),
  JWT_SECRET_PREVIOUS: z.string().optional(),
  JWT_EXPIRES_IN: duration('30m'),
  API_KEYS: csv,
  ADMIN_PASSWORD: z.string().optional(),
  SESSION_ENCRYPTION_KEY: hexKey,
  SESSION_ENCRYPTION_KEY_PREVIOUS: hexKey,
  SESSION_HEALTH_CHECK_INTERVAL: int(60, 1, MAX_TIMER_SECONDS),
  SESSION_FAILURE_WINDOW: int(20, 1, 1000),
  SESSION_FAILURE_MIN_SAMPLE: int(5, 1, 1000),
  SESSION_FAILURE_RATE_THRESHOLD: ratio(0.5),
  SESSION_COOLDOWN_SECONDS: int(30, 1, MAX_PG_INT),
  SESSION_PROBE_TIMEOUT_MS: int(5000, 100),
  CACHE_DEFAULT_TTL: int(3600, 0),
  CACHE_HIT_PRICE: int(0, 0),
  CACHE_MEMORY_MAX_BYTES: int(64 * 1024 * 1024, 1024),
  CONVERSATION_TTL: int(86400, 1),
  CONVERSATION_MAX_MESSAGES: int(50, 2, 10000),
  CONVERSATION_MAX_TOKENS: int(8000, 100),
  LOGIN_RATE_LIMIT_PER_MINUTE: int(60, 1),
  RATE_LIMIT_PER_MINUTE: int(600, 1),
  RATE_LIMIT_PER_HOUR: int(20000, 1),
  RATE_LIMIT_ON_REDIS_FAILURE: z
    .enum(['local', 'deny'], { message: 'expected local or deny' })
    .default('local'),
  CB_FAILURE_THRESHOLD: int(5, 1),
  CB_OPEN_MS: int(30000, 1),
  CB_HALF_OPEN_SUCCESSES: int(3, 1),
  SHUTDOWN_GRACE_MS: int(10000, 0, MAX_TIMER_MS),
  SHUTDOWN_DRAIN_DELAY_MS: int(0, 0, MAX_TIMER_MS),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'expected fatal, error, warn, info, debug, trace or silent',
    })
    .default('info'),
  LOG_SYNC: bool(false),
  METRICS_USER: z.string().optional(),
  METRICS_PASSWORD: z.string().optional(),
  PROVIDERS_FILE: z.string().default('config/providers.yaml'),
  BOOTSTRAP_CREDITS: int(1_000_000, 0),
  /** Let a credit hold that will almost surely pass commit while the upstream call starts. */
  CREDIT_HOLD_OVERLAP: bool(true),
  /** Let a settle within its hold commit after the response instead of before it. */
  CREDIT_SETTLE_AFTER_RESPONSE: bool(false),
  LOGIN_MAX_FAILURES_PER_USER: int(5, 1),
  LOGIN_MAX_FAILURES_PER_IP: int(20, 1),
  LOGIN_LOCKOUT_WINDOW: duration('15m'),
  ALLOW_FORCE_OPEN: bool(false),
  UPSTREAM_DEADLINE_MS: int(60000, 100),
  UPSTREAM_CONNECT_TIMEOUT_MS: int(5000, 100),
  UPSTREAM_POOL_CONNECTIONS: int(64, 1, 10000),
  UPSTREAM_RETRY_BACKOFF_MS: int(100, 0, 10000),
  BODY_LIMIT_BYTES: int(10 * 1024 * 1024, 1024),
  /** Deepest JSON nesting accepted in a request body; deeper is a 400 (stack-safe handling). */
  BODY_MAX_DEPTH: int(64, 2, 1000),
  /** Slow clients: time to send the request headers, then the whole request. */
  HTTP_HEADERS_TIMEOUT_MS: int(10_000, 100),
  HTTP_REQUEST_TIMEOUT_MS: int(30_000, 100),
  /** Idle keep-alive connections are closed after this. */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(72_000, 100),
  /** A socket with no traffic either way for this long is closed (0: never). */
  HTTP_CONNECTION_TIMEOUT_MS: int(300_000, 0),
  /** Browser origins allowed by CORS (comma-separated; `*` for any). Empty: no CORS at all. */
  CORS_ORIGINS: origins,
  /** Where PATCH /admin/providers may point a base_url (origins or *.host patterns; `*` any). */
  PROVIDER_BASE_URL_ALLOWLIST: urlAllowlist,
  /** false (default), true, a hop count, or comma-separated trusted proxy addresses/CIDRs. */
  TRUST_PROXY: trustProxy,
  REQUEST_LOG_RETENTION_DAYS: int(30, 1, MAX_RETENTION_DAYS),
  REQUEST_LOG_BUFFER_MAX: int(10000, 1),
  JOB_WORKER_ENABLED: bool(true),
  JOB_WORKER_CONCURRENCY: int(4, 1, 256),
  JOB_VISIBILITY_TIMEOUT_SECONDS: int(180, 2, 86399),
  JOB_MAX_ATTEMPTS: int(2, 1, 20),
  JOB_POLL_INTERVAL_MS: int(1000, 500, MAX_TIMER_MS),
  JOB_MAINTENANCE_INTERVAL_SECONDS: int(30, 1, 3600),
  JOB_STUCK_TIMEOUT_MINUTES: int(10, 1, MAX_PG_INT),
  JOB_REAPER_INTERVAL_SECONDS: int(60, 1, MAX_TIMER_SECONDS),
  JOB_RETENTION_DAYS: int(30, 1, MAX_RETENTION_DAYS),
  AUDIT_LOG_RETENTION_DAYS: int(365, 1, MAX_RETENTION_DAYS),
  RETENTION_SCHEDULE: cron('15 3 * * *'),
  WS_PING_INTERVAL_SECONDS: int(30, 1, MAX_TIMER_SECONDS),
  WORKER_PORT: int(8001, 0, 65535),
});

export type RawEnv = z.infer<typeof envSchema>;
