import { pendingMigrations, runMigrationsLocked } from '@app/database';
import { CliCommand } from '../cli-command';
import { withMigrationDataSource } from './migration-data-source';

export const migrateCommand: CliCommand = {
  name: 'migrate',
  description: 'Apply pending database migrations (--dry lists them without applying)',
  options: [{ name: 'dry', description: 'list the pending migrations, apply nothing' }],
  async run(ctx, { flags }) {
    return withMigrationDataSource(ctx, async (dataSource) => {
      const pending = await pendingMigrations(dataSource);
      if (flags.has('dry')) {
        ctx.print(
          pending.length === 0
            ? 'No pending migrations.'
            : `Pending migrations (${pending.length}):`,
        );
        for (const name of pending) ctx.print(`  ${name}`);
        return 0;
      }
      const applied = await runMigrationsLocked(dataSource);
      ctx.print(
        applied.length === 0 ? 'No pending migrations.' : `Applied ${applied.length} migration(s):`,
      );
      for (const m of applied) ctx.print(`  ${m.name}`);
      return 0;
    });
  },
};
