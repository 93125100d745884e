/**
 * Where the shared test services are. global-setup fills these in (process.env is inherited by
 * the test files); helpers read them here.
 */
export const testEnv = {
  get adminDatabaseUrl(): string {
    const url = process.env.SY_TEST_ADMIN_DB_URL;
    if (!url)
      throw new Error('SY_TEST_ADMIN_DB_URL missing: run tests through jest (global-setup)');
    return url;
  },
  get templateDatabase(): string {
    return process.env.SY_TEST_TEMPLATE_DB ?? '';
  },
  get redisUrl(): string | undefined {
    return process.env.SY_TEST_REDIS_URL || undefined;
  },
};

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
