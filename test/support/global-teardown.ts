import type { EmbeddedPostgres } from '../../libs/database/src/embedded-postgres';
import type { RedisServer } from './redis-server';

export default async function globalTeardown(): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  await (g.__SY_REDIS__ as RedisServer | undefined)?.stop();
  await (g.__SY_EMBEDDED_PG__ as EmbeddedPostgres | undefined)?.stop();
}
