import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { DataSource, EntityManager, Migration } from 'typeorm';
import type { Pool } from 'pg';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { MIGRATIONS } from '../../../migrations';
import { databaseUnavailable, isConnectionError } from './database.errors';
import { dbPoolConnections, dbQueryDuration, dbUp } from './database.metrics';
import { EmbeddedPostgres } from './embedded-postgres';

export type Queryable = Pick<EntityManager, 'query'>;

const PROBE_INTERVAL_MS = 2000;

export function createDataSource(url: string, config: AppConfig['database']): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    logging: false,
    extra: {
      max: config.poolMax,
      connectionTimeoutMillis: config.connectTimeoutMs,
      idleTimeoutMillis: 30000,
      statement_timeout: config.statementTimeoutMs,
      application_name: 'switchyard',
    },
  });
}

/** Arbitrary constant naming the advisory lock that serialises migrations. */
const MIGRATION_LOCK_ID = 7_272_741;

/**
 * Applies pending migrations while holding a Postgres advisory lock, so replicas (or a worker and
 * an init container) starting together take turns instead of racing to create the same tables.
 */
export async function runMigrationsLocked(dataSource: DataSource): Promise<Migration[]> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    return await dataSource.runMigrations({ transaction: 'each' });
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
    await runner.release();
  }
}

/** Lists migrations that have not been applied, without applying them. */
export async function pendingMigrations(dataSource: DataSource): Promise<string[]> {
  const exists = await dataSource.query(
    `SELECT to_regclass('public.migrations') IS NOT NULL AS present`,
  );
  const applied = new Set<string>();
  if (exists[0]?.present) {
    for (const row of await dataSource.query(`SELECT name FROM migrations`)) applied.add(row.name);
  }
  return dataSource.migrations
    .map((m) => m.name ?? m.constructor.name)
    .filter((name) => !applied.has(name));
}

/**
 * Owns the connection pool. Every query goes through `query`/`transaction` so that durations
 * are measured and an unreachable database fails fast with 503 instead of hanging requests.
 */
@Injectable()
export class DatabaseService implements OnApplicationShutdown {
  private dataSource?: DataSource;
  private embedded?: EmbeddedPostgres;
  private reachable = true;
  private probeTimer?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Starts embedded Postgres when needed, connects, and applies pending migrations. */
  async connect(): Promise<void> {
    let url = this.config.database.url;
    if (!url) {
      this.embedded = new EmbeddedPostgres(
        this.config.database.embeddedDir,
        this.config.database.embeddedPort,
        this.logger,
      );
      url = await this.embedded.start();
    }
    this.dataSource = createDataSource(url, this.config.database);
    await this.dataSource.initialize();
    this.pool().on('error', (err) =>
      this.logger.warn({ err: err.message }, 'idle database connection failed'),
    );
    const applied = await runMigrationsLocked(this.dataSource);
    dbUp.set(1);
    if (applied.length > 0)
      this.logger.info({ migrations: applied.map((m) => m.name) }, 'migrations applied');
    this.probeTimer = setInterval(() => void this.probe(), PROBE_INTERVAL_MS);
    this.probeTimer.unref();
  }

  get isReachable(): boolean {
    return this.reachable;
  }

  private pool(): Pool {
    return (this.source().driver as unknown as { master: Pool }).master;
  }

  private source(): DataSource {
    if (!this.dataSource) throw databaseUnavailable();
    return this.dataSource;
  }

  poolStats(): { total: number; idle: number; waiting: number; max: number } {
    const pool = this.pool();
    return {
      total: pool.totalCount,
      idle: pool.idleCount,
      waiting: pool.waitingCount,
      max: this.config.database.poolMax,
    };
  }

  /** Pings the database; used by readiness and the fail-fast flag. */
  async ping(timeoutMs = 1000): Promise<number> {
    const started = performance.now();
    const client = await Promise.race([
      this.pool().connect(),
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error('timeout exceeded when trying to connect')),
          timeoutMs,
        ).unref(),
      ),
    ]);
    try {
      await client.query('SELECT 1');
    } finally {
      client.release();
    }
    return performance.now() - started;
  }

  private async probe(): Promise<void> {
    try {
      await this.ping(this.config.database.connectTimeoutMs);
      if (!this.reachable) this.logger.info('database reachable again');
      this.reachable = true;
    } catch (err) {
      if (this.reachable)
        this.logger.error({ err: (err as Error).message }, 'database unreachable');
      this.reachable = false;
    }
    const stats = this.poolStats();
    dbPoolConnections.set({ state: 'total' }, stats.total);
    dbPoolConnections.set({ state: 'idle' }, stats.idle);
    dbPoolConnections.set({ state: 'waiting' }, stats.waiting);
    dbPoolConnections.set({ state: 'max' }, stats.max);
  }

  async query<T = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    operation = 'query',
  ): Promise<T[]> {
    if (!this.reachable) throw databaseUnavailable();
    const end = dbQueryDuration.startTimer({ operation });
    try {
      return await this.source().query(sql, params);
    } catch (err) {
      throw this.translate(err);
    } finally {
      end();
    }
  }

  /** Runs `work` in one transaction; a ledger write and its balance update commit together. */
  async transaction<T>(work: (tx: Queryable) => Promise<T>, operation = 'transaction'): Promise<T> {
    if (!this.reachable) throw databaseUnavailable();
    const end = dbQueryDuration.startTimer({ operation });
    try {
      return await this.source().transaction((manager) => work(manager));
    } catch (err) {
      throw this.translate(err);
    } finally {
      end();
    }
  }

  private translate(err: unknown): unknown {
    if (isConnectionError(err)) {
      this.reachable = false;
      return databaseUnavailable();
    }
    return err;
  }

  /** Raw DataSource for migrations and the CLI. */
  get rawDataSource(): DataSource {
    return this.source();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.dataSource?.isInitialized) await this.dataSource.destroy().catch(() => undefined);
    await this.embedded
      ?.stop()
      .catch((err) => this.logger.warn({ err }, 'embedded Postgres stop failed'));
  }
}
