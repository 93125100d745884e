import { runCli } from '../../apps/cli/src/main';

/**
 * Runs `npm run cli -- <args>` in this process (no build) against `databaseUrl`, capturing what
 * it prints on stdout. `env` adds to or replaces the test's environment (LOG_LEVEL is `warn`).
 */
export async function cliInProcess(
  args: string[],
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  try {
    const code = await runCli(args, {
      ...process.env,
      NODE_ENV: 'test',
      DATABASE_URL: databaseUrl,
      LOG_LEVEL: 'warn',
      ...env,
    });
    return { code, out: out.join('') };
  } finally {
    spy.mockRestore();
  }
}
