import path from 'node:path';
import type { z } from 'zod';
import { shownValue } from './config-redaction';
import { envSchema, RawEnv } from './config.schema';

/** Minimum length for secrets that protect tokens or credentials in production. */
const MIN_SECRET_LENGTH = 32;
/** Public in the source, so anyone can sign admin tokens with it: refused in production. */
const DEV_JWT_SECRET = 'switchyard-development-jwt-secret-not-for-production';
/**
 * Fewer distinct characters than this is a typed pattern, not a random secret: 32 random hex
 * characters have fewer than 6 distinct ones with a probability below 1e-12.
 */
const MIN_SECRET_DISTINCT_CHARS = 6;
/** Placeholders of docs and examples (`CHANGE_ME`), compared without case and punctuation. */
const DEFAULT_PASSWORDS = new Set(['admin', 'password', 'changeme', 'admin123']);

export class ConfigValidationError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

export type AppConfig = ReturnType<typeof buildConfig>;

/** One line per schema problem, naming the variable; a credential's value is never echoed. */
function schemaProblems(error: z.ZodError, env: NodeJS.ProcessEnv): string[] {
  return error.issues.map((issue) => {
    const name = issue.path.join('.') || '(env)';
    return `${name}: ${issue.message}${shownValue(name, env[name])}`;
  });
}

function buildConfig(e: RawEnv, env: NodeJS.ProcessEnv) {
  const production = e.NODE_ENV === 'production';
  return {
    env: e.NODE_ENV,
    production,
    /** Background loops (health checks, job workers, schedules). The CLI turns them off. */
    backgroundTasks: true as boolean,
    http: {
      port: e.PORT,
      host: e.HOST,
      bodyLimitBytes: e.BODY_LIMIT_BYTES,
      trustProxy: e.TRUST_PROXY,
      shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
      shutdownDrainDelayMs: e.SHUTDOWN_DRAIN_DELAY_MS,
      bodyMaxDepth: e.BODY_MAX_DEPTH,
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      connectionTimeoutMs: e.HTTP_CONNECTION_TIMEOUT_MS,
      corsOrigins: e.CORS_ORIGINS,
    },
    database: {
      url: e.DATABASE_URL,
      embedded: e.DATABASE_URL === undefined,
      embeddedDir: e.EMBEDDED_PG_DIR,
      embeddedPort: e.EMBEDDED_PG_PORT,
      poolMax: e.DB_POOL_MAX_SIZE,
      statementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
      connectTimeoutMs: e.DB_CONNECT_TIMEOUT_MS,
    },
    redis: {
      url: e.REDIS_URL,
      required: e.REDIS_REQUIRED,
      keyPrefix: e.REDIS_KEY_PREFIX,
      /** Empty: REDIS_URL's host is the server. Otherwise these Sentinels name the master. */
      sentinels: e.REDIS_SENTINELS,
      sentinelName: e.REDIS_SENTINEL_NAME,
      sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
    },
    auth: {
      jwtSecret: e.JWT_SECRET ?? DEV_JWT_SECRET,
      jwtSecretPrevious: e.JWT_SECRET_PREVIOUS,
      jwtExpiresInSeconds: e.JWT_EXPIRES_IN,
      bootstrapKeys: e.API_KEYS,
      bootstrapCredits: e.BOOTSTRAP_CREDITS,
      adminPassword: e.ADMIN_PASSWORD,
      loginMaxFailuresPerUser: e.LOGIN_MAX_FAILURES_PER_USER,
      loginMaxFailuresPerIp: e.LOGIN_MAX_FAILURES_PER_IP,
      loginLockoutWindowSeconds: e.LOGIN_LOCKOUT_WINDOW,
    },
    sessions: {
      encryptionKey: e.SESSION_ENCRYPTION_KEY,
      encryptionKeyPrevious: e.SESSION_ENCRYPTION_KEY_PREVIOUS,
      healthCheckIntervalSeconds: e.SESSION_HEALTH_CHECK_INTERVAL,
      failureWindow: e.SESSION_FAILURE_WINDOW,
      failureMinSample: e.SESSION_FAILURE_MIN_SAMPLE,
      failureRateThreshold: e.SESSION_FAILURE_RATE_THRESHOLD,
      cooldownSeconds: e.SESSION_COOLDOWN_SECONDS,
      probeTimeoutMs: e.SESSION_PROBE_TIMEOUT_MS,
      /** Where a development key is kept when SESSION_ENCRYPTION_KEY is unset (never in production). */
      devKeyFile: path.join(
        path.dirname(path.resolve(e.EMBEDDED_PG_DIR)),
        'session-encryption.key',
      ),
    },
    credits: {
      /** See CreditsService.holdMayOverlap. */
      holdOverlap: e.CREDIT_HOLD_OVERLAP,
      /** See CreditsService.settleForResponse. */
      settleAfterResponse: e.CREDIT_SETTLE_AFTER_RESPONSE,
    },
    cache: {
      defaultTtlSeconds: e.CACHE_DEFAULT_TTL,
      /** Credits charged for a response served from the cache. */
      hitPrice: e.CACHE_HIT_PRICE,
      /** Bound of the per-process cache used when Redis is absent or unreachable (LRU). */
      memoryMaxBytes: e.CACHE_MEMORY_MAX_BYTES,
    },
    conversations: {
      ttlSeconds: e.CONVERSATION_TTL,
      maxMessages: e.CONVERSATION_MAX_MESSAGES,
      maxTokens: e.CONVERSATION_MAX_TOKENS,
    },
    rateLimit: {
      perMinute: e.RATE_LIMIT_PER_MINUTE,
      perHour: e.RATE_LIMIT_PER_HOUR,
      onRedisFailure: e.RATE_LIMIT_ON_REDIS_FAILURE,
      /** Per client IP on POST /auth/token (every attempt). */
      loginPerMinute: e.LOGIN_RATE_LIMIT_PER_MINUTE,
    },
    breaker: {
      failureThreshold: e.CB_FAILURE_THRESHOLD,
      openMs: e.CB_OPEN_MS,
      halfOpenSuccesses: e.CB_HALF_OPEN_SUCCESSES,
      allowForceOpen: e.ALLOW_FORCE_OPEN,
    },
    logging: { level: e.LOG_LEVEL, sync: e.LOG_SYNC },
    metrics: { user: e.METRICS_USER, password: e.METRICS_PASSWORD },
    providersFile: e.PROVIDERS_FILE,
    /** `${VAR}` substitution in PROVIDERS_FILE reads the environment through this lookup only. */
    lookupEnv: (name: string): string | undefined => env[name],
    upstream: {
      deadlineMs: e.UPSTREAM_DEADLINE_MS,
      connectTimeoutMs: e.UPSTREAM_CONNECT_TIMEOUT_MS,
      poolConnections: e.UPSTREAM_POOL_CONNECTIONS,
      retryBackoffMs: e.UPSTREAM_RETRY_BACKOFF_MS,
      /** Empty: base_url cannot be changed through the admin API (only PROVIDERS_FILE). */
      baseUrlAllowlist: e.PROVIDER_BASE_URL_ALLOWLIST,
    },
    requestLogs: {
      retentionDays: e.REQUEST_LOG_RETENTION_DAYS,
      bufferMax: e.REQUEST_LOG_BUFFER_MAX,
    },
    jobs: {
      /** Run queue workers in this gateway process (the `worker` entry point always does). */
      workerEnabled: e.JOB_WORKER_ENABLED,
      concurrency: e.JOB_WORKER_CONCURRENCY,
      /** A job held this long by a silent worker is handed to another one. */
      visibilityTimeoutSeconds: e.JOB_VISIBILITY_TIMEOUT_SECONDS,
      maxAttempts: e.JOB_MAX_ATTEMPTS,
      pollIntervalMs: e.JOB_POLL_INTERVAL_MS,
      maintenanceIntervalSeconds: e.JOB_MAINTENANCE_INTERVAL_SECONDS,
      stuckTimeoutMinutes: e.JOB_STUCK_TIMEOUT_MINUTES,
      reaperIntervalSeconds: e.JOB_REAPER_INTERVAL_SECONDS,
      retentionDays: e.JOB_RETENTION_DAYS,
      retentionSchedule: e.RETENTION_SCHEDULE,
      wsPingIntervalSeconds: e.WS_PING_INTERVAL_SECONDS,
      /** The worker entry point's /metrics and /health port (0: none). */
      workerPort: e.WORKER_PORT,
    },
    auditLog: { retentionDays: e.AUDIT_LOG_RETENTION_DAYS },
  };
}

/**
 * True for a value a person typed rather than generated: few distinct characters (`aaaa…`, an
 * all-zero key) or one short sequence repeated (`abcabc…`, `secretsecret…`). A random value of
 * 32 or more characters trips neither except with negligible probability.
 */
function hasLowVariety(value: string): boolean {
  if (new Set(value).size < MIN_SECRET_DISTINCT_CHARS) return true;
  // `value` repeats its first `period` characters when it equals itself shifted by `period`.
  for (let period = 1; period <= value.length / 2; period++)
    if (value.slice(period) === value.slice(0, value.length - period)) return true;
  return false;
}

/** The JWT_SECRET rules; JWT_SECRET_PREVIOUS verifies tokens too, so it gets the same ones. */
function jwtSecretProblem(name: string, secret: string): string | undefined {
  if (secret === DEV_JWT_SECRET)
    return `${name}: the development default from the source is refused in production`;
  if (secret.length < MIN_SECRET_LENGTH)
    return `${name}: must be at least ${MIN_SECRET_LENGTH} characters in production`;
  if (hasLowVariety(secret))
    return `${name}: too little variety for a secret (a repeated character or pattern); use a random value such as \`openssl rand -base64 48\``;
  return undefined;
}

function isDefaultPassword(password: string): boolean {
  return DEFAULT_PASSWORDS.has(password.toLowerCase().replace(/[^a-z0-9]/g, ''));
}

/**
 * Production refuses settings that are fine on a laptop and dangerous on the internet. Read from
 * the raw environment, so these are reported together with any schema problem.
 */
function productionProblems(env: NodeJS.ProcessEnv): string[] {
  if (env.NODE_ENV !== 'production') return [];
  const problems: string[] = [];
  if (!env.JWT_SECRET) problems.push('JWT_SECRET: required in production');
  for (const name of ['JWT_SECRET', 'JWT_SECRET_PREVIOUS'] as const) {
    const secret = env[name];
    const problem = secret ? jwtSecretProblem(name, secret) : undefined;
    if (problem) problems.push(problem);
  }
  if (!env.SESSION_ENCRYPTION_KEY)
    problems.push('SESSION_ENCRYPTION_KEY: required in production (64 hex characters)');
  // Its format (64 hex) is the schema's check; the previous key only decrypts during a rotation,
  // and refusing a weak one would block rotating away from it.
  else if (hasLowVariety(env.SESSION_ENCRYPTION_KEY))
    problems.push(
      'SESSION_ENCRYPTION_KEY: too little variety for a key (a repeated character or pattern); use `openssl rand -hex 32`',
    );
  if (!env.DATABASE_URL)
    problems.push(
      'DATABASE_URL: required in production (the embedded Postgres is for development)',
    );
  // Bootstrap keys are bearer credentials with a user's credits behind them; the key itself is
  // never printed, only its place in the list.
  const bootstrapKeys = (env.API_KEYS ?? '').split(',').map((key) => key.trim());
  bootstrapKeys.forEach((key, index) => {
    if (!key) return;
    const which = `API_KEYS: key ${index + 1} of ${bootstrapKeys.length}`;
    if (key.length < MIN_SECRET_LENGTH)
      problems.push(`${which} must be at least ${MIN_SECRET_LENGTH} characters in production`);
    else if (hasLowVariety(key))
      problems.push(
        `${which} has too little variety for a key (a repeated character or pattern); use a random value such as \`echo sk-$(openssl rand -hex 24)\``,
      );
  });
  for (const name of ['ADMIN_PASSWORD', 'METRICS_PASSWORD'] as const) {
    const password = env[name];
    if (password && isDefaultPassword(password))
      problems.push(`${name}: a default password is refused in production`);
  }
  if ((env.METRICS_USER === undefined) !== (env.METRICS_PASSWORD === undefined)) {
    problems.push('METRICS_USER/METRICS_PASSWORD: set both or neither');
  }
  return problems;
}

/**
 * `NAME=` counts as unset, as docker compose's `${NAME:-}` writes it: otherwise an empty
 * METRICS_PASSWORD would pass the "set both or neither" rule and leave /metrics open, and an
 * empty JWT_SECRET would replace the development default and fail every login at request time.
 */
function withoutEmptyValues(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
}

/**
 * Values each valid alone that contradict each other: the process would start and then never
 * do what the operator asked (never ready, never quarantine), so they are refused like a bad value.
 */
function contradictions(e: RawEnv): string[] {
  const problems: string[] = [];
  if (e.REDIS_REQUIRED && !e.REDIS_URL)
    problems.push(
      'REDIS_REQUIRED: true needs REDIS_URL (without it readiness would stay 503 forever)',
    );
  if (e.REDIS_SENTINELS.length > 0 && !e.REDIS_URL)
    problems.push(
      'REDIS_SENTINELS: needs REDIS_URL too (its user, password, database and TLS are used; its host is not dialled)',
    );
  if (e.SESSION_FAILURE_MIN_SAMPLE > e.SESSION_FAILURE_WINDOW)
    problems.push(
      `SESSION_FAILURE_MIN_SAMPLE: must be at most SESSION_FAILURE_WINDOW (${e.SESSION_FAILURE_WINDOW}): the window never holds more outcomes, so no session would ever be quarantined`,
    );
  return problems;
}

export function loadConfig(rawEnv: NodeJS.ProcessEnv = process.env): AppConfig {
  // PROVIDERS_FILE's `${VAR}` lookup keeps the raw environment (`${VAR:-default}` handles empty).
  const env = withoutEmptyValues(rawEnv);
  const parsed = envSchema.safeParse(env);
  const problems = [
    ...(parsed.success ? contradictions(parsed.data) : schemaProblems(parsed.error, env)),
    ...productionProblems(env),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigValidationError(problems);
  return buildConfig(parsed.data, rawEnv);
}

/** For entry points: on bad configuration, print one line per problem and exit with code 1. */
export function loadConfigOrExit(
  env: NodeJS.ProcessEnv = process.env,
  writeLine: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  exit: (code: number) => void = (code) => process.exit(code),
): AppConfig | undefined {
  try {
    return loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigValidationError)) throw err;
    for (const problem of err.problems) writeLine(`config error: ${problem}`);
    exit(1);
    return undefined;
  }
}
