import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { DataSource, Migration, MigrationExecutor, QueryRunner } from 'typeorm';
import type { Pool, PoolClient, QueryConfig } from 'pg';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { MIGRATIONS } from '../../../migrations';
import {
  databaseUnavailable,
  databaseUnanswered,
  isConnectionError,
  mayHaveRun,
  isRefusedValue,
  refusedValue,
} from './database.errors';
import { dbPoolConnections, dbQueryDuration, dbUp } from './database.metrics';
import { EmbeddedPostgres } from './embedded-postgres';

/* eslint-disable @typescript-eslint/no-explicit-any -- rows are typed by each repository's T */
/**
 * What repositories run SQL on: the pool, or one transaction's connection. `query` answers the
 * rows of any statement (RETURNING rows for UPDATE/DELETE); `execute` adds the affected-row
 * count for UPDATE/DELETE without RETURNING.
 */
export interface Queryable {
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>;
  execute<T = any>(sql: string, params?: unknown[]): Promise<{ rows: T[]; rowCount: number }>;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/**
 * A statement Postgres parses, analyses and plans once per pooled connection (a named prepared
 * statement) instead of on every call: for the ledger's batch statement that was a sixth of its
 * Postgres CPU when it carries one request's operations (docs/performance.md item 22). `name`
 * identifies `text` on every connection, so one name must never be given two texts.
 */
export interface PreparedStatement {
  readonly name: string;
  readonly text: string;
}

const PROBE_INTERVAL_MS = 2000;
/**
 * statement_timeout is the server's to enforce, so a server that answers nothing (stopped, cut
 * off by a partition) never ends a query with it. Past it by this much the client gives up.
 */
const QUERY_TIMEOUT_MARGIN_MS = 1000;

export function createDataSource(url: string, config: AppConfig['database']): DataSource {
  return postgresDataSource(url, {
    max: config.poolMax,
    connectionTimeoutMillis: config.connectTimeoutMs,
    idleTimeoutMillis: 30000,
    statement_timeout: config.statementTimeoutMs,
    query_timeout: config.statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
  });
}

/** Our schema and migrations on `url`, with `pool` as the pg pool's settings. */
function postgresDataSource(url: string, pool: Record<string, number>): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    migrations: MIGRATIONS,
    migrationsTableName: 'migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    logging: false,
    extra: { ...pool, application_name: 'switchyard' },
  });
}

/**
 * The DataSource migrations run on (the gateway's boot, `migrate`, `migrate:revert`): one
 * connection without DB_STATEMENT_TIMEOUT_MS, which bounds gateway queries, not schema work. With
 * it a VALIDATE or CREATE INDEX on a large credit_ledger, or the wait for the migrations' lock
 * while another process migrated, was cancelled after 10 s and failed the start. Its
 * lock_timeout stays: DDL queued behind a long transaction (a pg_dump, a report) holds up every
 * query on its table, so it gives up after DB_STATEMENT_TIMEOUT_MS instead (withMigrationLock
 * lifts it for the advisory lock only).
 */
export function createMigrationDataSource(url: string, config: AppConfig['database']): DataSource {
  return postgresDataSource(url, {
    max: 1,
    connectionTimeoutMillis: config.connectTimeoutMs,
    lock_timeout: config.statementTimeoutMs,
  });
}

/**
 * Keeps an 'error' listener on a client checked out of the pool until it is released. pg-pool
 * removes its own listener at checkout, and pg emits 'error' on a client whose server goes away
 * (a Postgres restart) even while a query is running: with no listener that event is thrown and
 * the process crashes. The returned release destroys a broken connection rather than handing it
 * to the next caller.
 */
function holdClient(client: PoolClient): (failure?: unknown) => void {
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  return (failure) => {
    client.removeListener('error', onError);
    client.release(broken ?? (isConnectionError(failure) ? (failure as Error) : undefined));
  };
}

/** A query failed because its pooled connection had died; the connection has been dropped. */
class StaleConnectionError extends Error {
  constructor(override readonly cause: unknown) {
    super('pooled connection was closed by the server');
  }
}

/** Arbitrary constant naming the advisory lock that serialises migrations. */
export const MIGRATION_LOCK_ID = 7_272_741;

/**
 * Runs `work` on one connection holding the migrations' advisory lock, so replicas (or a worker,
 * an init container and `migrate:revert`) take turns instead of racing to change the schema. The
 * lock is waited for as long as the process holding it migrates: lock_timeout is lifted for that
 * one statement. `work` gets the lock's own connection: on a second one a pool of one connection
 * (DB_POOL_MAX_SIZE=1) waited for itself and the gateway never started.
 */
export async function withMigrationLock<T>(
  dataSource: DataSource,
  work: (runner: QueryRunner) => Promise<T>,
): Promise<T> {
  const runner = dataSource.createQueryRunner();
  const client: PoolClient = await runner.connect();
  // A server that goes away mid-migration fails the running query; unheard, pg's 'error' event
  // on the checked-out client would crash the process as well.
  const ignore = () => undefined;
  client.on('error', ignore);
  try {
    await runner.query('SET lock_timeout = 0');
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    await runner.query('RESET lock_timeout');
    return await work(runner);
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
    await runner.release();
    client.removeListener('error', ignore);
  }
}

/** Applies pending migrations under the migrations' lock (withMigrationLock), each in its own transaction. */
export function runMigrationsLocked(dataSource: DataSource): Promise<Migration[]> {
  return withMigrationLock(dataSource, (runner) =>
    migrationsOn(dataSource, runner).executePendingMigrations(),
  );
}

/** Applies pending migrations on a DataSource of their own (createMigrationDataSource). */
export async function migrateDatabase(
  url: string,
  config: AppConfig['database'],
): Promise<Migration[]> {
  const dataSource = createMigrationDataSource(url, config);
  await dataSource.initialize();
  try {
    return await runMigrationsLocked(dataSource);
  } finally {
    await dataSource.destroy();
  }
}

/** TypeORM's migration runner working on `runner`'s connection, each migration in its own transaction. */
export function migrationsOn(dataSource: DataSource, runner: QueryRunner): MigrationExecutor {
  const executor = new MigrationExecutor(dataSource, runner);
  executor.transaction = 'each';
  return executor;
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
  private probing?: Promise<void>;

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
    const applied = await migrateDatabase(url, this.config.database);
    this.dataSource = createDataSource(url, this.config.database);
    await this.dataSource.initialize();
    this.pool().on('error', (err) =>
      this.logger.warn({ err: err.message }, 'idle database connection failed'),
    );
    // pg removes its idle error listener while a client is checked out; a connection that dies
    // mid-query then emits 'error' with no listener, which would crash the process.
    const guarded = new WeakSet<object>();
    this.pool().on('acquire', (client) => {
      if (guarded.has(client)) return;
      guarded.add(client);
      client.on('error', (err) =>
        this.logger.warn({ err: err.message }, 'database connection failed while in use'),
      );
    });
    dbUp.set(1);
    if (applied.length > 0)
      this.logger.info({ migrations: applied.map((m) => m.name) }, 'migrations applied');
    this.probeTimer = setInterval(() => void this.recheck(), PROBE_INTERVAL_MS);
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

  /**
   * Pings the database; used by readiness and the fail-fast flag. A pooled connection whose
   * backend was just terminated (pg_terminate_backend, a failover) fails its next query before
   * the pool has noticed. That says nothing about the database, so the ping drops that
   * connection and tries the next one; only a failed connect or a failure on every connection
   * the pool holds counts as down.
   */
  async ping(timeoutMs = 1000): Promise<number> {
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.pingOnce(timeoutMs - (performance.now() - started));
        this.markReachable();
        return performance.now() - started;
      } catch (err) {
        if (!(err instanceof StaleConnectionError)) throw err;
        const outOfTime = performance.now() - started >= timeoutMs;
        if (outOfTime || attempt >= this.config.database.poolMax) throw err.cause;
      }
    }
  }

  private async pingOnce(timeoutMs: number): Promise<void> {
    let gaveUp = false;
    const connecting = this.pool().connect();
    const client = await Promise.race([
      connecting,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => {
            gaveUp = true;
            reject(new Error('timeout exceeded when trying to connect'));
          },
          Math.max(timeoutMs, 0),
        ).unref(),
      ),
    ]).catch((err) => {
      // A connection that arrives after we gave up goes back to the pool instead of leaking.
      if (gaveUp)
        connecting.then(
          (late) => late.release(),
          () => undefined,
        );
      throw err;
    });
    const release = holdClient(client);
    let failure: unknown;
    try {
      // A connection that was fine when it went idle can hang on a frozen server: the probe
      // that decides fail-fast must not wait longer than it was given.
      const probe: QueryConfig & { query_timeout: number } = {
        text: 'SELECT 1',
        query_timeout: Math.max(timeoutMs, 1),
      };
      await client.query(probe);
    } catch (err) {
      failure = err;
      throw isConnectionError(err) ? new StaleConnectionError(err) : err;
    } finally {
      release(failure);
    }
  }

  /**
   * Any ping that gets its answer ends fail-fast at once: readiness pings too, so the gateway
   * never reports ready while still refusing requests until the next probe.
   */
  private markReachable(): void {
    if (!this.reachable) this.logger.info('database reachable again');
    this.reachable = true;
    dbUp.set(1);
  }

  /** Runs one probe, or joins the one already running. */
  private recheck(): Promise<void> {
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async probe(): Promise<void> {
    try {
      await this.ping(this.config.database.connectTimeoutMs);
    } catch (err) {
      if (this.reachable)
        this.logger.error({ err: (err as Error).message }, 'database unreachable');
      this.reachable = false;
      dbUp.set(0);
    }
    const stats = this.poolStats();
    dbPoolConnections.set({ state: 'total' }, stats.total);
    dbPoolConnections.set({ state: 'idle' }, stats.idle);
    dbPoolConnections.set({ state: 'waiting' }, stats.waiting);
    dbPoolConnections.set({ state: 'max' }, stats.max);
  }

  async query<T = Record<string, unknown>>(
    sql: string | PreparedStatement,
    params: unknown[] = [],
    operation = 'query',
  ): Promise<T[]> {
    if (!this.reachable) throw databaseUnavailable();
    const end = dbQueryDuration.startTimer({ operation });
    try {
      const result =
        typeof sql === 'string'
          ? await this.pool().query(sql, params)
          : await this.pool().query({ name: sql.name, text: sql.text, values: params });
      return result.rows as T[];
    } catch (err) {
      throw this.translate(err, operation);
    } finally {
      end();
    }
  }

  /** Runs `work` in one transaction; a ledger write and its balance update commit together. */
  async transaction<T>(work: (tx: Queryable) => Promise<T>, operation = 'transaction'): Promise<T> {
    if (!this.reachable) throw databaseUnavailable();
    const end = dbQueryDuration.startTimer({ operation });
    try {
      return await this.runTransaction(work);
    } catch (err) {
      throw this.translate(err, operation);
    } finally {
      end();
    }
  }

  private translate(err: unknown, operation: string): unknown {
    if (isConnectionError(err)) {
      // One dead pooled connection (a terminated backend) is not an outage: a probe decides
      // at once whether to fail fast, instead of refusing everything until the next tick.
      void this.recheck();
      return mayHaveRun(err) ? databaseUnanswered() : databaseUnavailable();
    }
    // TypeORM copies the bound parameters onto its error; they can hold key hashes or
    // credentials, and the error may be logged.
    if (err && typeof err === 'object' && 'parameters' in err)
      delete (err as { parameters?: unknown }).parameters;
    if (isRefusedValue(err)) {
      const { code, message } = err as { code: string; message: string };
      this.logger.warn({ operation, code, reason: message }, 'database refused a request value');
      return refusedValue();
    }
    return err;
  }

  /** Like query, with the affected-row count (UPDATE/DELETE without RETURNING). */
  async execute<T = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    operation = 'query',
  ): Promise<{ rows: T[]; rowCount: number }> {
    const rows: T[] = [];
    let rowCount = 0;
    await this.transactionless(async () => {
      const result = await this.pool().query(sql, params);
      rows.push(...(result.rows as T[]));
      rowCount = result.rowCount ?? 0;
    }, operation);
    return { rows, rowCount };
  }

  /** Measurement, fail-fast and error translation shared by the single-statement paths. */
  private async transactionless(run: () => Promise<void>, operation: string): Promise<void> {
    if (!this.reachable) throw databaseUnavailable();
    const end = dbQueryDuration.startTimer({ operation });
    try {
      await run();
    } catch (err) {
      throw this.translate(err, operation);
    } finally {
      end();
    }
  }

  /**
   * BEGIN/COMMIT on one pooled connection, straight on pg: TypeORM's managers answer
   * UPDATE/DELETE with [rows, count], which every repository would otherwise have to undo.
   */
  private async runTransaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool().connect();
    const release = holdClient(client);
    const tx: Queryable = {
      query: async (sql, params = []) => (await client.query(sql, params)).rows,
      execute: async (sql, params = []) => {
        const result = await client.query(sql, params);
        return { rows: result.rows, rowCount: result.rowCount ?? 0 };
      },
    };
    let failure: unknown;
    try {
      await client.query('BEGIN');
      const result = await work(tx);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      failure = err;
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      release(failure);
    }
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
