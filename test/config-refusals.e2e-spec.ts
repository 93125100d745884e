import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { adminToken } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';

/**
 * docs/configuration.md: "A bad value stops the process with exit code 1 and one line per bad
 * variable". Values that used to pass the boot and fail later — a stack trace while the server
 * was built, a 1 ms timer, a login answering 500, /metrics open in production — are refused by
 * the real gateway process, each with its one line and nothing else on stderr.
 */
const ROOT = path.resolve(__dirname, '..');
const GATEWAY_ARGS = [
  '-r',
  path.join(ROOT, 'test/support/ts-register.js'),
  'apps/gateway/src/main.ts',
];

/** The gateway from its sources; nothing may be reached, so the database is a closed port. */
function refusedStart(env: Record<string, string>): { status: number | null; lines: string[] } {
  const run = spawnSync(process.execPath, GATEWAY_ARGS, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'development',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: run.status, lines: run.stderr.split('\n').filter(Boolean) };
}

describe('configuration: values refused at boot with one line each', () => {
  it('counts an empty value as unset: METRICS_PASSWORD= beside METRICS_USER is refused in production', () => {
    // docker compose writes `METRICS_PASSWORD: ${METRICS_PASSWORD:-}` as an empty value; it
    // passed "set both or neither" and /metrics answered without auth.
    const { status, lines } = refusedStart({
      NODE_ENV: 'production',
      JWT_SECRET: randomBytes(48).toString('base64'),
      SESSION_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      METRICS_USER: 'prometheus',
      METRICS_PASSWORD: '',
    });
    expect({ status, lines }).toEqual({
      status: 1,
      lines: ['config error: METRICS_USER/METRICS_PASSWORD: set both or neither'],
    });
  });
});

describe('configuration: an empty value counts as unset', () => {
  let gw: TestGateway | undefined;
  afterAll(async () => {
    await gw?.close();
  });

  it('JWT_SECRET= and LOG_LEVEL= fall back to their defaults: admins log in, the CLI runs', async () => {
    // It used to become the signing secret, and every POST /auth/token answered 500.
    gw = await startGateway({ env: { JWT_SECRET: '' } });
    const { token } = await adminToken(gw);
    const users = await fetch(`${gw.url}/admin/users`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(users.status).toBe(200);
    // The CLI reads LOG_LEVEL for its own logger: LOG_LEVEL= is its quiet default, not a crash.
    const cli = spawnSync(
      process.execPath,
      ['-r', TS_REGISTER, 'apps/cli/src/main.ts', 'migrate', '--dry'],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', DATABASE_URL: gw.databaseUrl, LOG_LEVEL: '' },
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect({ status: cli.status, stdout: cli.stdout.trim() }).toEqual({
      status: 0,
      stdout: 'No pending migrations.',
    });
  });
});
