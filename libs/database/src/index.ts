export { DatabaseModule } from './database.module';
export {
  DatabaseService,
  MIGRATION_LOCK_ID,
  createDataSource,
  createMigrationDataSource,
  migrateDatabase,
  migrationsOn,
  pendingMigrations,
  runMigrationsLocked,
  withMigrationLock,
} from './database.service';
export type { PreparedStatement, Queryable } from './database.service';
export {
  databaseUnanswered,
  databaseUnavailable,
  isConnectionError,
  isUnanswered,
} from './database.errors';
export { EmbeddedPostgres } from './embedded-postgres';
export { RequestLogWriter } from './request-log.writer';
export type { RequestLogEntry } from './request-log.types';
