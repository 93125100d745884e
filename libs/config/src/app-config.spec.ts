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
