import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import path from 'node:path';
import { adminToken } from './support/auth-factory';
import { createTestDatabase, dropDatabase, startGateway, TestGateway } from './support/gateway';
import { writeProvidersFile } from './support/mock-upstream';

/**
 * docs/configuration.md: "A bad value stops the process with exit code 1 and one line per bad
 * variable". Values that used to pass the boot and fail later — a stack trace while the server
 * was built, a 1 ms timer, a login answering 500, /metrics open in production — are refused by
 * the real gateway process, each with its one line and nothing else on stderr.
 */
const ROOT = path.resolve(__dirname, '..');
const TS_REGISTER = path.join(ROOT, 'test/support/ts-register.js');
const GATEWAY = 'apps/gateway/src/main.ts';

/**
 * An entry point (the gateway unless told) from its sources, with stderr in lines. Nothing may be
 * reached unless the test says so: the database is a closed port.
 */
function refusedStart(
  env: Record<string, string>,
  args = [GATEWAY],
): { status: number | null; lines: string[] } {
  const run = spawnSync(process.execPath, ['-r', TS_REGISTER, ...args], {
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
  it('refuses timers Node cannot hold, a bad TRUST_PROXY or cron, and contradicting values', () => {
    const { status, lines } = refusedStart({
      // Past 2^31-1 ms Node fires a timer after 1 ms: a busy reaper and queue poll, a shutdown
      // that cuts every request at once, a pool that times out every connect.
      JOB_POLL_INTERVAL_MS: '3000000000',
      JOB_REAPER_INTERVAL_SECONDS: '3000000',
      WS_PING_INTERVAL_SECONDS: '3000000',
      SHUTDOWN_GRACE_MS: '3000000000',
      DB_CONNECT_TIMEOUT_MS: '3000000000',
      DB_STATEMENT_TIMEOUT_MS: '2147483000',
      // fastify threw "invalid IP address" with a stack while the server was built.
      TRUST_PROXY: '10.0.0.0/8, proxy.internal',
      // Started, logged "retention schedule not registered", and never ran retention.
      RETENTION_SCHEDULE: '15 3 * * mon-frx',
      // Started and stayed unready, or never quarantined a session.
      REDIS_REQUIRED: 'true',
      SESSION_FAILURE_WINDOW: '10',
      SESSION_FAILURE_MIN_SAMPLE: '20',
    });
    expect({ status, lines }).toEqual({
      status: 1,
      lines: [
        expect.stringMatching(
          /^config error: DB_STATEMENT_TIMEOUT_MS: expected an integer between 100 and 2147482647 /,
        ),
        expect.stringMatching(
          /^config error: DB_CONNECT_TIMEOUT_MS: expected an integer between 100 and 2147483647 /,
        ),
        expect.stringMatching(
          /^config error: SHUTDOWN_GRACE_MS: expected an integer between 0 and 2147483647 /,
        ),
        expect.stringMatching(
          /^config error: TRUST_PROXY: expected false, true, a hop count, or comma-separated proxy addresses\/CIDRs/,
        ),
        expect.stringMatching(
          /^config error: JOB_POLL_INTERVAL_MS: expected an integer between 500 and 2147483647 /,
        ),
        expect.stringMatching(
          /^config error: JOB_REAPER_INTERVAL_SECONDS: expected an integer between 1 and 2147483 /,
        ),
        expect.stringMatching(
          /^config error: RETENTION_SCHEDULE: expected a 5-field cron expression/,
        ),
        expect.stringMatching(
          /^config error: WS_PING_INTERVAL_SECONDS: expected an integer between 1 and 2147483 /,
        ),
      ],
    });
    // Valid alone, contradicting each other: reported once the values themselves are valid.
    const contradicting = refusedStart({
      REDIS_REQUIRED: 'true',
      SESSION_FAILURE_WINDOW: '10',
      SESSION_FAILURE_MIN_SAMPLE: '20',
      TRUST_PROXY: 'loopback, 10.0.0.0/8, 192.168.0.0/255.255.0.0, fd00::/8, 203.0.113.7',
      RETENTION_SCHEDULE: '*/30 2-4 * * mon-fri',
    });
    expect(contradicting).toEqual({
      status: 1,
      lines: [
        'config error: REDIS_REQUIRED: true needs REDIS_URL (without it readiness would stay 503 forever)',
        'config error: SESSION_FAILURE_MIN_SAMPLE: must be at most SESSION_FAILURE_WINDOW (10): the window never holds more outcomes, so no session would ever be quarantined',
      ],
    });
  });

  it('refuses numbers Postgres or a date cannot hold, which failed every reaper or retention run', () => {
    // JOB_STUCK_TIMEOUT_MINUTES=9007199254740991: "job reaper round failed" every round (value out
    // of range for type integer); *_RETENTION_DAYS=2147483647: retention "Invalid time value".
    const { status, lines } = refusedStart({
      SESSION_COOLDOWN_SECONDS: '2147483648',
      REQUEST_LOG_RETENTION_DAYS: '2147483647',
      JOB_STUCK_TIMEOUT_MINUTES: '9007199254740991',
      JOB_RETENTION_DAYS: '1000001',
      AUDIT_LOG_RETENTION_DAYS: '2147483647',
    });
    expect({ status, lines }).toEqual({
      status: 1,
      lines: [
        expect.stringMatching(
          /^config error: SESSION_COOLDOWN_SECONDS: expected an integer between 1 and 2147483647 /,
        ),
        expect.stringMatching(
          /^config error: REQUEST_LOG_RETENTION_DAYS: expected an integer between 1 and 1000000 /,
        ),
        expect.stringMatching(
          /^config error: JOB_STUCK_TIMEOUT_MINUTES: expected an integer between 1 and 2147483647 /,
        ),
        expect.stringMatching(
          /^config error: JOB_RETENTION_DAYS: expected an integer between 1 and 1000000 /,
        ),
        expect.stringMatching(
          /^config error: AUDIT_LOG_RETENTION_DAYS: expected an integer between 1 and 1000000 /,
        ),
      ],
    });
  });

  it('refuses zero durations: tokens that expire when issued, a lockout that never counts', () => {
    // JWT_EXPIRES_IN=0: POST /auth/token answered 200 with a token every admin route refused
    // (401); LOGIN_LOCKOUT_WINDOW=0: failed logins never reached the 429 lockout.
    const { status, lines } = refusedStart({ JWT_EXPIRES_IN: '0', LOGIN_LOCKOUT_WINDOW: '0m' });
    expect({ status, lines }).toEqual({
      status: 1,
      lines: [
        'config error: JWT_EXPIRES_IN: expected a duration of at least 1 s such as 30m, 12h, 45s or seconds (got "0")',
        'config error: LOGIN_LOCKOUT_WINDOW: expected a duration of at least 1 s such as 30m, 12h, 45s or seconds (got "0m")',
      ],
    });
  });

  it('says what is wrong with PROVIDERS_FILE in config error lines, without a stack', async () => {
    // It was "fatal: Error: …" and a stack trace from the Nest injector, and js-yaml's
    // multi-line excerpt for broken YAML.
    const unknownKey = writeProvidersFile(
      'providers:\n  - { name: a, kind: mock, models: [m], bogus: 1 }\n',
    );
    expect(refusedStart({ PROVIDERS_FILE: unknownKey })).toEqual({
      status: 1,
      lines: [
        `config error: PROVIDERS_FILE: ${unknownKey}: providers[0]: Unrecognized key: "bogus"`,
      ],
    });
    const brokenYaml = writeProvidersFile('providers: [\n');
    expect(refusedStart({ PROVIDERS_FILE: brokenYaml })).toEqual({
      status: 1,
      lines: [
        `config error: PROVIDERS_FILE: ${brokenYaml}: not valid YAML (deficient indentation (2:1))`,
      ],
    });
    // The worker entry point says the same.
    expect(
      refusedStart({ PROVIDERS_FILE: '/nonexistent/providers.yaml', WORKER_PORT: '0' }, [
        'apps/gateway/src/worker.ts',
      ]),
    ).toEqual({
      status: 1,
      lines: [
        'config error: PROVIDERS_FILE: /nonexistent/providers.yaml not found (looked at /nonexistent/providers.yaml); see docs/configuration.md',
      ],
    });
    // Prices are read once the database answers.
    const databaseUrl = await createTestDatabase();
    try {
      const badPrice = writeProvidersFile(
        'providers:\n  - { name: a, kind: mock, models: [m] }\npricing:\n  - { model: m, per_request: -1 }\n',
      );
      expect(refusedStart({ PROVIDERS_FILE: badPrice, DATABASE_URL: databaseUrl })).toEqual({
        status: 1,
        lines: [
          `config error: PROVIDERS_FILE: ${badPrice}: pricing[0].per_request: must be at least 0`,
        ],
      });
    } finally {
      await dropDatabase(databaseUrl);
    }
  });

  it('names PORT, WORKER_PORT or HOST when the listen address cannot be used', async () => {
    // "fatal: Error: listen EADDRINUSE: address already in use …" and a stack before.
    const squatter = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as { port: number }).port;
    const databaseUrl = await createTestDatabase();
    try {
      const env = { DATABASE_URL: databaseUrl, HOST: '127.0.0.1' };
      expect(refusedStart({ ...env, PORT: String(port) })).toEqual({
        status: 1,
        lines: [`config error: PORT: 127.0.0.1:${port} is already in use by another program`],
      });
      expect(
        refusedStart({ ...env, WORKER_PORT: String(port) }, ['apps/gateway/src/worker.ts']),
      ).toEqual({
        status: 1,
        lines: [
          `config error: WORKER_PORT: 127.0.0.1:${port} is already in use by another program`,
        ],
      });
      expect(refusedStart({ ...env, HOST: '192.0.2.1' })).toEqual({
        status: 1,
        lines: ['config error: HOST: 192.0.2.1 is not an address of this machine'],
      });
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
      await dropDatabase(databaseUrl);
    }
  });

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
