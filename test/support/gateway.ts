import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Client } from 'pg';
import { loadConfig } from '@app/config';
import { createGateway, GatewayApp } from '../../apps/gateway/src/bootstrap';
import { testEnv, withDatabase } from './test-env';

export interface TestGateway {
  url: string;
  gateway: GatewayApp;
  databaseUrl: string;
  /** Every JSON log line the app wrote, as raw text. */
  logs: string[];
  logText(): string;
  /** Graceful shutdown (SIGTERM path). */
  close(): Promise<void>;
}

/** A fresh database cloned from the migrated template; dropped by dropDatabase(). */
export async function createTestDatabase(): Promise<string> {
  const name = `sy_test_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: testEnv.adminDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${testEnv.templateDatabase}`);
  } finally {
    await admin.end();
  }
  return withDatabase(testEnv.adminDatabaseUrl, name);
}

export async function dropDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  const admin = new Client({ connectionString: testEnv.adminDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

export function uniqueRedisPrefix(): string {
  return `t${randomBytes(4).toString('hex')}:`;
}

export interface StartOptions {
  env?: Record<string, string | undefined>;
  /** Reuse a database (second replica); otherwise a fresh one is created. */
  databaseUrl?: string;
  /** Use Redis (default when the test run has one). Pass false for memory mode. */
  redis?: boolean | string;
}

/**
 * Boots the real gateway in this process on a free port against a real Postgres (and Redis),
 * capturing its log lines. Two calls with the same databaseUrl and REDIS_KEY_PREFIX act as two
 * replicas.
 */
export async function startGateway(options: StartOptions = {}): Promise<TestGateway> {
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase());
  const ownsDatabase = options.databaseUrl === undefined;
  const redisUrl =
    options.redis === false
      ? undefined
      : typeof options.redis === 'string'
        ? options.redis
        : testEnv.redisUrl;
  const env: Record<string, string | undefined> = {
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: uniqueRedisPrefix(),
    JWT_SECRET: 'test-jwt-secret-that-is-long-enough-0123456789',
    SESSION_ENCRYPTION_KEY: 'a'.repeat(64),
    SHUTDOWN_GRACE_MS: '3000',
    // Tests play several clients from one address by sending X-Forwarded-For.
    TRUST_PROXY: 'true',
    SESSION_HEALTH_CHECK_INTERVAL: '3600',
    ...options.env,
  };
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(line);
      done();
    },
  });
  const gateway = await createGateway(loadConfig(env as NodeJS.ProcessEnv), sink);
  return {
    url: gateway.url,
    gateway,
    databaseUrl,
    logs,
    logText: () => logs.join('\n'),
    close: async () => {
      await gateway.shutdown();
      if (ownsDatabase) await dropDatabase(databaseUrl).catch(() => undefined);
    },
  };
}
