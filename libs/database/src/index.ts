export { DatabaseModule } from './database.module';
export {
  DatabaseService,
  MIGRATION_LOCK_ID,
  createDataSource,
  migrationsOn,
  pendingMigrations,
  runMigrationsLocked,
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
