import { randomBytes } from 'node:crypto';
import { ConfigValidationError, loadConfig, loadConfigOrExit } from './app-config';
import { maskUrlCredentials } from './config-redaction';

const DB_PASSWORD = 'Pg-pa55word-do-not-print';
const REDIS_PASSWORD = 'redis-pa55word-do-not-print';
const JWT_SECRET = 'jwt-secret-do-not-print';
const SESSION_KEY = 'session-key-do-not-print';

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigValidationError);
    return (err as ConfigValidationError).problems;
  }
  throw new Error('loadConfig accepted a bad configuration');
}

describe('configuration errors never echo credentials', () => {
  const badEnv = {
    NODE_ENV: 'production',
    // Wrong scheme: refused, and the value used to be printed whole.
    DATABASE_URL: `mysql://app:${DB_PASSWORD}@db.internal:3306/switchyard`,
    REDIS_URL: `http://:${REDIS_PASSWORD}@cache.internal:6379`,
    JWT_SECRET,
    SESSION_ENCRYPTION_KEY: SESSION_KEY,
  };

  it('names each bad variable and its problem, with URL passwords masked and secrets omitted', () => {
    const problems = problemsOf(badEnv);
    const text = problems.join('\n');
    for (const secret of [DB_PASSWORD, REDIS_PASSWORD, JWT_SECRET, SESSION_KEY])
      expect(text).not.toContain(secret);
    expect(problems).toContain(
      'DATABASE_URL: expected a URL starting with postgres: or postgresql:// (got "mysql://app:***@db.internal:3306/switchyard")',
    );
    expect(problems).toContain(
      'REDIS_URL: expected a URL starting with redis: or rediss:// (got "http://:***@cache.internal:6379")',
    );
    expect(problems).toContain('SESSION_ENCRYPTION_KEY: expected 32 bytes as 64 hex characters');
    expect(problems).toContain('JWT_SECRET: must be at least 32 characters in production');
  });

  it('prints the same redacted lines on the way out', () => {
    const lines: string[] = [];
    loadConfigOrExit(
      badEnv,
      (line) => lines.push(line),
      () => undefined,
    );
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) {
      expect(line).toMatch(/^config error: [A-Z_]+: /);
      for (const secret of [DB_PASSWORD, REDIS_PASSWORD, JWT_SECRET, SESSION_KEY])
        expect(line).not.toContain(secret);
    }
  });

  it('masks a password in a URL that does not parse, and in a credential query parameter', () => {
    const problems = problemsOf({
      // An unescaped '/' in the password makes the URL unparseable (the port reads 'Pg-pa55…').
      DATABASE_URL: `postgres://app:${DB_PASSWORD}/1@db.internal:5432/x`,
      REDIS_URL: `redis://cache.internal:63x9/0?password=${REDIS_PASSWORD}&x=1`,
    }).join('\n');
    expect(problems).not.toContain(DB_PASSWORD);
    expect(problems).not.toContain(REDIS_PASSWORD);
    expect(problems).toContain('postgres://app:***@db.internal:5432/x');
    expect(problems).toContain('redis://cache.internal:63x9/0?password=***&x=1');
  });

  it('still shows values that hold no credential', () => {
    expect(problemsOf({ PORT: 'abc' })).toEqual([
      'PORT: expected an integer between 0 and 65535 (got "abc")',
    ]);
  });
});

describe('maskUrlCredentials', () => {
  it.each([
    ['postgres://user:pw@host:5432/db', 'postgres://user:***@host:5432/db'],
    ['redis://:pw@host:6379', 'redis://:***@host:6379'],
    ['postgres://user@host/db', 'postgres://user@host/db'],
    ['postgres://host/db', 'postgres://host/db'],
    ['user:p@ss/word@host', 'user:***@host'],
    ['https://a:b@x,https://c:d@y', 'https://a:***@y'],
  ])('%s -> %s', (input, masked) => {
    expect(maskUrlCredentials(input)).toBe(masked);
  });
});

describe('production refuses weak and default secrets', () => {
  const strong = () => ({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://app@db.internal:5432/switchyard',
    JWT_SECRET: randomBytes(48).toString('base64'),
    SESSION_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
  });
  const DEV_JWT_SECRET = 'switchyard-development-jwt-secret-not-for-production';

  it('starts with random secrets from the documented generators', () => {
    // The variety rule must never trip on a real random value; 32 hex characters is the
    // shortest (and least varied) JWT_SECRET an operator would generate.
    for (let i = 0; i < 2000; i++) {
      const env = {
        ...strong(),
        JWT_SECRET: randomBytes(16).toString('hex'),
        JWT_SECRET_PREVIOUS: randomBytes(48).toString('base64'),
      };
      expect(loadConfig(env).production).toBe(true);
    }
  });

  it('refuses the development JWT secret built into the source, current or previous', () => {
    expect(problemsOf({ ...strong(), JWT_SECRET: DEV_JWT_SECRET })).toEqual([
      'JWT_SECRET: the development default from the source is refused in production',
    ]);
    expect(problemsOf({ ...strong(), JWT_SECRET_PREVIOUS: DEV_JWT_SECRET })).toEqual([
      'JWT_SECRET_PREVIOUS: the development default from the source is refused in production',
    ]);
  });

  it('refuses short or patterned bootstrap API_KEYS in production, naming the key by place only', () => {
    const good = `sk-sy-${randomBytes(30).toString('base64url')}`;
    expect(loadConfig({ ...strong(), API_KEYS: good }).auth.bootstrapKeys).toEqual([good]);
    const problems = problemsOf({ ...strong(), API_KEYS: `${good},abc,${'ab'.repeat(20)}` });
    expect(problems).toEqual([
      'API_KEYS: key 2 of 3 must be at least 32 characters in production',
      expect.stringMatching(/^API_KEYS: key 3 of 3 has too little variety/),
    ]);
    expect(problems.join('\n')).not.toContain('abab');
  });

  it('holds JWT_SECRET_PREVIOUS to the JWT_SECRET rules: it verifies admin tokens too', () => {
    expect(problemsOf({ ...strong(), JWT_SECRET_PREVIOUS: 'abc' })).toEqual([
      'JWT_SECRET_PREVIOUS: must be at least 32 characters in production',
    ]);
    expect(problemsOf({ ...strong(), JWT_SECRET_PREVIOUS: 'a'.repeat(32) })).toEqual([
      expect.stringMatching(/^JWT_SECRET_PREVIOUS: too little variety/),
    ]);
  });

  it.each([
    ['one character', 'a'.repeat(32)],
    ['two characters, not repeating', `${'a'.repeat(40)}b`],
    ['a short word repeated', 'secret'.repeat(6)],
    ['the digits repeated', '0123456789'.repeat(4)],
    ['a sentence repeated', 'my-admin-tokens!'.repeat(2)],
  ])('refuses a JWT_SECRET of trivially low variety: %s', (_what, secret) => {
    expect(problemsOf({ ...strong(), JWT_SECRET: secret })).toEqual([
      'JWT_SECRET: too little variety for a secret (a repeated character or pattern); use a random value such as `openssl rand -base64 48`',
    ]);
  });

  it.each([
    ['all zeros', '0'.repeat(64)],
    ['one byte repeated', 'ab'.repeat(32)],
    ['a counter', '0123456789abcdef'.repeat(4)],
  ])('refuses a SESSION_ENCRYPTION_KEY of trivially low variety: %s', (_what, key) => {
    expect(problemsOf({ ...strong(), SESSION_ENCRYPTION_KEY: key })).toEqual([
      'SESSION_ENCRYPTION_KEY: too little variety for a key (a repeated character or pattern); use `openssl rand -hex 32`',
    ]);
  });

  it('refuses the placeholder passwords of the examples, whatever their case', () => {
    expect(
      problemsOf({
        ...strong(),
        ADMIN_PASSWORD: 'CHANGE_ME',
        METRICS_USER: 'prom',
        METRICS_PASSWORD: 'Change-Me',
      }),
    ).toEqual([
      'ADMIN_PASSWORD: a default password is refused in production',
      'METRICS_PASSWORD: a default password is refused in production',
    ]);
  });

  it('reports each refusal as one named line and exits 1, outside production accepts them', () => {
    const weak = {
      ...strong(),
      JWT_SECRET: DEV_JWT_SECRET,
      JWT_SECRET_PREVIOUS: 'abc',
      SESSION_ENCRYPTION_KEY: '0'.repeat(64),
    };
    const lines: string[] = [];
    let code: number | undefined;
    loadConfigOrExit(
      weak,
      (line) => lines.push(line),
      (c) => (code = c),
    );
    expect(code).toBe(1);
    expect(lines.map((l) => /^config error: ([A-Z_]+): /.exec(l)?.[1])).toEqual([
      'JWT_SECRET',
      'JWT_SECRET_PREVIOUS',
      'SESSION_ENCRYPTION_KEY',
    ]);
    expect(loadConfig({ ...weak, NODE_ENV: 'development' }).production).toBe(false);
  });
});

describe('timers Node can hold', () => {
  it('bounds SESSION_HEALTH_CHECK_INTERVAL by Node’s longest timer, and keeps the runbook’s safe mode', () => {
    expect(problemsOf({ SESSION_HEALTH_CHECK_INTERVAL: '2147484' })).toEqual([
      expect.stringMatching(
        /^SESSION_HEALTH_CHECK_INTERVAL: expected an integer between 1 and 2147483 /,
      ),
    ]);
    expect(
      loadConfig({ SESSION_HEALTH_CHECK_INTERVAL: '999999' }).sessions.healthCheckIntervalSeconds,
    ).toBe(999999);
  });
});
