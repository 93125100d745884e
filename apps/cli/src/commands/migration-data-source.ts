import { DataSource } from 'typeorm';
import { createMigrationDataSource, EmbeddedPostgres } from '@app/database';
import { CliContext } from '../cli-command';

/**
 * Runs `work` on a migration DataSource (createMigrationDataSource: no statement timeout) for the
 * configured database — the embedded Postgres when
 * DATABASE_URL is unset, started for the command and stopped after it — and closes both
 * whatever `work` does.
 */
export async function withMigrationDataSource<T>(
  ctx: CliContext,
  work: (dataSource: DataSource) => Promise<T>,
): Promise<T> {
  let url = ctx.config.database.url;
  let embedded: EmbeddedPostgres | undefined;
  if (!url) {
    embedded = new EmbeddedPostgres(
      ctx.config.database.embeddedDir,
      ctx.config.database.embeddedPort,
      ctx.logger,
    );
    url = await embedded.start();
  }
  try {
    const dataSource = createMigrationDataSource(url, ctx.config.database);
    await dataSource.initialize();
    try {
      return await work(dataSource);
    } finally {
      await dataSource.destroy();
    }
  } finally {
    await embedded?.stop();
  }
}
