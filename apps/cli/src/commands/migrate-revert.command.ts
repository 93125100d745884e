import { DataSource, QueryRunner } from 'typeorm';
import { migrationsOn, withMigrationLock } from '@app/database';
import { CliCommand } from '../cli-command';
import { withMigrationDataSource } from './migration-data-source';

/** Reverting it would drop every table: that is a restore from backup, not a rollback. */
const INITIAL_MIGRATION = /^InitialSchema\d+$/;

/** The migration TypeORM's undoLastMigration reverts: the one applied last (highest id). */
async function lastApplied(runner: QueryRunner): Promise<string | undefined> {
  const exists = await runner.query(
    `SELECT to_regclass('public.migrations') IS NOT NULL AS present`,
  );
  if (!exists[0]?.present) return undefined;
  const rows: { name: string }[] = await runner.query(
    'SELECT name FROM migrations ORDER BY id DESC LIMIT 1',
  );
  return rows[0]?.name;
}

function known(dataSource: DataSource, name: string): boolean {
  return dataSource.migrations.some((m) => (m.name ?? m.constructor.name) === name);
}

/**
 * Undoes the last applied migration (its `down`, in one transaction) for a database rollback
 * (runbook "Database rollback"). It runs under the migrations' advisory lock, so it never
 * interleaves with a replica or init container applying migrations at the same moment.
 */
export const migrateRevertCommand: CliCommand = {
  name: 'migrate:revert',
  description: 'Revert the last applied migration (--dry names it without reverting)',
  options: [{ name: 'dry', description: 'name the migration it would revert, revert nothing' }],
  async run(ctx, { flags }) {
    return withMigrationDataSource(ctx, async (dataSource) => {
      return withMigrationLock(dataSource, async (runner) => {
        // Read under the lock: a migration applied while we waited is the one to consider.
        const last = await lastApplied(runner);
        if (!last) {
          ctx.print('No applied migrations: nothing to revert.');
          return 0;
        }
        if (INITIAL_MIGRATION.test(last)) {
          ctx.print(
            `error: ${last} is the initial schema; reverting it would drop every table. ` +
              'Restore a backup instead (runbook "Backup and restore of Postgres").',
          );
          return 2;
        }
        if (!known(dataSource, last)) {
          ctx.print(
            `error: the last applied migration ${last} is not part of this version, so its down ` +
              'step is unknown here. Run migrate:revert with the version that added it.',
          );
          return 1;
        }
        if (flags.has('dry')) {
          ctx.print(`Would revert: ${last}`);
          return 0;
        }
        await migrationsOn(dataSource, runner).undoLastMigration();
        ctx.print(`Reverted ${last}.`);
        ctx.print(
          'A gateway of this version applies it again when it starts: run the previous version now.',
        );
        return 0;
      });
    });
  },
};
