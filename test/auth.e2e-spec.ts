import { randomBytes } from 'node:crypto';
import { JwtService } from '@nestjs/jwt';
import { Client } from 'pg';
import { UsersService } from '@app/auth';
import { adminToken, newConsumer } from './support/auth-factory';
import { installAuthProbe, metricValue } from './support/auth-probe';
import { startGateway, TestGateway } from './support/gateway';

installAuthProbe();

const JWT_SECRET = 'current-jwt-secret-for-auth-tests-0123456789';
const JWT_SECRET_PREVIOUS = 'previous-jwt-secret-for-auth-tests-9876543210';
const BOOT_KEY_A = `boot-a-${randomBytes(12).toString('hex')}`;
const BOOT_KEY_B = `sk-sy-boot${randomBytes(12).toString('hex')}`;

interface Envelope {
  error: { message: string; type: string; code: string; param: string | null };
}

let ipCounter = 0;
/** Every test speaks from its own address so per-IP login limits never leak between tests. */
const nextIp = () => `198.51.100.${++ipCounter}`;

async function call(
  gw: TestGateway,
  path: string,
  headers: Record<string, string> = {},
  init: RequestInit = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`${gw.url}${path}`, { ...init, headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body, headers: res.headers };
}

function expectEnvelope(body: unknown, code: string, type: string): void {
  const envelope = body as Envelope;
  expect(Object.keys(envelope.error)).toEqual(
    expect.arrayContaining(['message', 'type', 'code', 'param']),
  );
  expect(envelope.error.code).toBe(code);
  expect(envelope.error.type).toBe(type);
}

async function expectCounted(
  gw: TestGateway,
  reason: string,
  action: () => Promise<void>,
): Promise<void> {
  const labels = `reason="${reason}"`;
  const before = await metricValue(gw.url, 'gateway_auth_failures_total', labels);
  await action();
  const after = await metricValue(gw.url, 'gateway_auth_failures_total', labels);
  expect(after - before).toBe(1);
}

function login(
  gw: TestGateway,
  username: string,
  password: string,
  ip: string,
  form = false,
): Promise<{ status: number; body: unknown; headers: Headers }> {
  return call(
    gw,
    '/auth/token',
    {
      'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json',
      'x-forwarded-for': ip,
    },
    {
      method: 'POST',
      body: form
        ? new URLSearchParams({ username, password }).toString()
        : JSON.stringify({ username, password }),
    },
  );
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('auth: API keys and admin tokens', () => {
  let gw: TestGateway;
  let admin: { token: string; password: string };
  const secretsSeen: string[] = [BOOT_KEY_A, BOOT_KEY_B];

  beforeAll(async () => {
    gw = await startGateway({
      env: {
        API_KEYS: `${BOOT_KEY_A}, ${BOOT_KEY_B}`,
        BOOTSTRAP_CREDITS: '5000',
        JWT_SECRET,
        JWT_SECRET_PREVIOUS,
        LOGIN_MAX_FAILURES_PER_USER: '3',
        LOGIN_MAX_FAILURES_PER_IP: '4',
        LOGIN_LOCKOUT_WINDOW: '10m',
        LOGIN_RATE_LIMIT_PER_MINUTE: '1000',
      },
    });
    admin = await adminToken(gw);
    secretsSeen.push(admin.token, admin.password);
  });

  afterAll(async () => {
    await gw.close();
  });

  describe('API keys on public routes', () => {
    it('accepts a key as Bearer and as X-API-Key and attaches the principal', async () => {
      const c = await newConsumer(gw, { rateLimitPerMinute: 7 });
      secretsSeen.push(c.key);
      const viaBearer = await call(gw, '/probe/chat', { authorization: `Bearer ${c.key}` });
      expect(viaBearer.status).toBe(200);
      expect(viaBearer.body).toEqual({
        userId: c.userId,
        apiKeyId: c.keyId,
        keyPrefix: c.key.slice(0, 10),
        scopes: ['chat', 'images', 'jobs'],
        rateLimitPerMinute: 7,
        rateLimitPerHour: null,
        cacheScope: 'user',
      });
      const viaHeader = await call(gw, '/probe/chat', { 'x-api-key': c.key });
      expect(viaHeader.status).toBe(200);
    });

    it('rejects a request without a key (401 invalid_api_key, reason missing)', async () => {
      await expectCounted(gw, 'missing', async () => {
        const res = await call(gw, '/probe/chat');
        expect(res.status).toBe(401);
        expectEnvelope(res.body, 'invalid_api_key', 'authentication_error');
      });
    });

    it('rejects a malformed credential header (reason malformed)', async () => {
      await expectCounted(gw, 'malformed', async () => {
        const res = await call(gw, '/probe/chat', { authorization: 'Basic dXNlcjpwYXNz' });
        expect(res.status).toBe(401);
        expectEnvelope(res.body, 'invalid_api_key', 'authentication_error');
      });
      await expectCounted(gw, 'malformed', async () => {
        const res = await call(gw, '/probe/chat', { authorization: 'Bearer two words' });
        expect(res.status).toBe(401);
      });
      await expectCounted(gw, 'malformed', async () => {
        const res = await call(gw, '/probe/chat', { 'x-api-key': 'x'.repeat(600) });
        expect(res.status).toBe(401);
      });
    });

    it('rejects an unknown key (reason unknown)', async () => {
      await expectCounted(gw, 'unknown', async () => {
        const res = await call(gw, '/probe/chat', {
          authorization: `Bearer sk-sy-${randomBytes(20).toString('hex')}`,
        });
        expect(res.status).toBe(401);
        expectEnvelope(res.body, 'invalid_api_key', 'authentication_error');
      });
    });

    it('rejects a revoked key with key_revoked (reason revoked)', async () => {
      const c = await newConsumer(gw);
      secretsSeen.push(c.key);
      expect((await call(gw, '/probe/chat', { 'x-api-key': c.key })).status).toBe(200);
      const del = await call(
        gw,
        `/admin/keys/${c.keyId}`,
        { authorization: `Bearer ${admin.token}` },
        { method: 'DELETE' },
      );
      expect(del.status).toBe(200);
      await expectCounted(gw, 'revoked', async () => {
        const res = await call(gw, '/probe/chat', { 'x-api-key': c.key });
        expect(res.status).toBe(401);
        expectEnvelope(res.body, 'key_revoked', 'authentication_error');
      });
      // The refused request is still attributed to its key in request_logs (written in batches).
      const db = new Client({ connectionString: gw.databaseUrl });
      await db.connect();
      try {
        const deadline = Date.now() + 10_000;
        let rows: { status_code: number }[] = [];
        while (Date.now() < deadline && rows.length === 0) {
          await new Promise((r) => setTimeout(r, 200));
          ({ rows } = await db.query(
            `SELECT status_code FROM request_logs WHERE api_key_id = $1 AND status_code = 401`,
            [c.keyId],
          ));
        }
        expect(rows.length).toBeGreaterThan(0);
      } finally {
        await db.end();
      }
    });

    it('rejects an expired key with key_expired (reason expired)', async () => {
      const c = await newConsumer(gw, { expiresAt: new Date(Date.now() + 1000) });
      secretsSeen.push(c.key);
      await new Promise((r) => setTimeout(r, 1200));
      await expectCounted(gw, 'expired', async () => {
        const res = await call(gw, '/probe/chat', { 'x-api-key': c.key });
        expect(res.status).toBe(401);
        expectEnvelope(res.body, 'key_expired', 'authentication_error');
      });
    });

    it('answers 403 permission_denied when the key lacks the route scope (reason scope)', async () => {
      const c = await newConsumer(gw, { scopes: ['chat'] });
      secretsSeen.push(c.key);
      expect((await call(gw, '/probe/chat', { 'x-api-key': c.key })).status).toBe(200);
      await expectCounted(gw, 'scope', async () => {
        const res = await call(gw, '/probe/images', { 'x-api-key': c.key });
        expect(res.status).toBe(403);
        expectEnvelope(res.body, 'permission_denied', 'permission_error');
      });
    });

    it('refuses an admin JWT on a public route: a token never pays for generations', async () => {
      await expectCounted(gw, 'unknown', async () => {
        const res = await call(gw, '/probe/chat', { authorization: `Bearer ${admin.token}` });
        expect(res.status).toBe(401);
        expectEnvelope(res.body, 'invalid_api_key', 'authentication_error');
      });
    });
  });

  describe('bootstrap keys from API_KEYS', () => {
    it('accepts both keys listed in API_KEYS, owned by the bootstrap user', async () => {
      const a = await call(gw, '/probe/chat', { authorization: `Bearer ${BOOT_KEY_A}` });
      const b = await call(gw, '/probe/images', { 'x-api-key': BOOT_KEY_B });
      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      const bootstrap = await gw.gateway.app.get(UsersService).findByUsername('bootstrap');
      expect((a.body as { userId: string }).userId).toBe(bootstrap!.id);
      expect((b.body as { userId: string }).userId).toBe(bootstrap!.id);
      expect((a.body as { keyPrefix: string }).keyPrefix).toBe(`${BOOT_KEY_A.slice(0, 4)}…`);
    });

    it('grants BOOTSTRAP_CREDITS once, even when another replica boots on the same database', async () => {
      const second = await startGateway({
        databaseUrl: gw.databaseUrl,
        env: { API_KEYS: `${BOOT_KEY_A},${BOOT_KEY_B}`, BOOTSTRAP_CREDITS: '5000' },
      });
      await second.close();
      const db = new Client({ connectionString: gw.databaseUrl });
      await db.connect();
      try {
        const { rows } = await db.query(
          `SELECT c.balance, (SELECT count(*) FROM credit_ledger l WHERE l.user_id = u.id) AS grants,
                  (SELECT sum(amount) FROM credit_ledger l WHERE l.user_id = u.id) AS total
           FROM users u JOIN user_credits c ON c.user_id = u.id WHERE u.username = 'bootstrap'`,
        );
        expect(rows[0]).toEqual({ balance: '5000', grants: '1', total: '5000' });
        const keys = await db.query(
          `SELECT count(*) AS n FROM api_keys k JOIN users u ON u.id = k.user_id
           WHERE u.username = 'bootstrap' AND k.revoked_at IS NULL`,
        );
        expect(keys.rows[0].n).toBe('2');
      } finally {
        await db.end();
      }
    });
  });

  describe('admin routes', () => {
    it('refuses an API key on an admin route (as Bearer: bad_jwt; as X-API-Key: missing)', async () => {
      const c = await newConsumer(gw);
      secretsSeen.push(c.key);
      await expectCounted(gw, 'bad_jwt', async () => {
        const res = await call(gw, '/admin/keys', { authorization: `Bearer ${c.key}` });
        expect(res.status).toBe(401);
        expectEnvelope(res.body, 'invalid_token', 'authentication_error');
      });
      await expectCounted(gw, 'missing', async () => {
        const res = await call(gw, '/admin/keys', { 'x-api-key': c.key });
        expect(res.status).toBe(401);
      });
      const boot = await call(gw, '/admin/users', { authorization: `Bearer ${BOOT_KEY_A}` });
      expect(boot.status).toBe(401);
    });

    it('accepts a valid admin token', async () => {
      const res = await call(gw, '/admin/keys', { authorization: `Bearer ${admin.token}` });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: expect.any(Array), next_cursor: null });
    });

    it('rejects a tampered token', async () => {
      const [header, payload, signature] = admin.token.split('.');
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      const forged = [header, b64url({ ...claims, username: 'mallory' }), signature].join('.');
      await expectCounted(gw, 'bad_jwt', async () => {
        const res = await call(gw, '/admin/users', { authorization: `Bearer ${forged}` });
        expect(res.status).toBe(401);
      });
      const flipped = `${admin.token.slice(0, -2)}${admin.token.endsWith('AA') ? 'BB' : 'AA'}`;
      expect((await call(gw, '/admin/users', { authorization: `Bearer ${flipped}` })).status).toBe(
        401,
      );
    });

    it('rejects an expired token', async () => {
      const signer = new JwtService({ secret: JWT_SECRET });
      const claims = JSON.parse(Buffer.from(admin.token.split('.')[1], 'base64url').toString());
      const expired = signer.sign(
        { sub: claims.sub, username: 'admin', role: 'admin' },
        {
          algorithm: 'HS256',
          issuer: 'switchyard',
          audience: 'switchyard-admin',
          expiresIn: -10,
        },
      );
      await expectCounted(gw, 'bad_jwt', async () => {
        const res = await call(gw, '/admin/users', { authorization: `Bearer ${expired}` });
        expect(res.status).toBe(401);
      });
    });

    it('rejects alg none and any algorithm other than HS256', async () => {
      const claims = JSON.parse(Buffer.from(admin.token.split('.')[1], 'base64url').toString());
      const none = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
      await expectCounted(gw, 'bad_jwt', async () => {
        const res = await call(gw, '/admin/users', { authorization: `Bearer ${none}` });
        expect(res.status).toBe(401);
      });
      const hs512 = new JwtService({ secret: JWT_SECRET }).sign(
        { sub: claims.sub, username: 'admin', role: 'admin' },
        { algorithm: 'HS512', issuer: 'switchyard', audience: 'switchyard-admin', expiresIn: 60 },
      );
      expect((await call(gw, '/admin/users', { authorization: `Bearer ${hs512}` })).status).toBe(
        401,
      );
    });

    it('accepts a token signed with JWT_SECRET_PREVIOUS only while it is configured', async () => {
      const claims = JSON.parse(Buffer.from(admin.token.split('.')[1], 'base64url').toString());
      const old = new JwtService({ secret: JWT_SECRET_PREVIOUS }).sign(
        { sub: claims.sub, username: 'admin', role: 'admin' },
        { algorithm: 'HS256', issuer: 'switchyard', audience: 'switchyard-admin', expiresIn: 60 },
      );
      expect((await call(gw, '/admin/users', { authorization: `Bearer ${old}` })).status).toBe(200);
      const unrotated = await startGateway({
        databaseUrl: gw.databaseUrl,
        env: { JWT_SECRET },
      });
      try {
        const res = await call(unrotated, '/admin/users', { authorization: `Bearer ${old}` });
        expect(res.status).toBe(401);
        const current = await call(unrotated, '/admin/users', {
          authorization: `Bearer ${admin.token}`,
        });
        expect(current.status).toBe(200);
      } finally {
        await unrotated.close();
      }
    });

    it('answers 403 to a valid token whose role is not admin', async () => {
      const password = randomBytes(12).toString('hex');
      secretsSeen.push(password);
      const username = `plain-${randomBytes(3).toString('hex')}`;
      await gw.gateway.app.get(UsersService).create({ username, password, role: 'user' }, 'test');
      const res = await login(gw, username, password, nextIp());
      expect(res.status).toBe(200);
      const token = (res.body as { access_token: string }).access_token;
      secretsSeen.push(token);
      await expectCounted(gw, 'scope', async () => {
        const denied = await call(gw, '/admin/users', { authorization: `Bearer ${token}` });
        expect(denied.status).toBe(403);
        expectEnvelope(denied.body, 'permission_denied', 'permission_error');
      });
    });
  });

  describe('POST /auth/token', () => {
    it('issues an HS256 bearer token for JSON and for form-urlencoded logins', async () => {
      for (const form of [false, true]) {
        const res = await login(gw, 'admin', admin.password, nextIp(), form);
        expect(res.status).toBe(200);
        expect(res.headers.get('cache-control')).toBe('no-store');
        const body = res.body as { access_token: string; token_type: string; expires_in: number };
        expect(body).toEqual({
          access_token: expect.any(String),
          token_type: 'bearer',
          expires_in: 1800,
        });
        secretsSeen.push(body.access_token);
        const header = JSON.parse(
          Buffer.from(body.access_token.split('.')[0], 'base64url').toString(),
        );
        expect(header.alg).toBe('HS256');
        const ok = await call(gw, '/admin/users', {
          authorization: `Bearer ${body.access_token}`,
        });
        expect(ok.status).toBe(200);
      }
    });

    it('rejects a wrong password with 401 invalid_credentials (reason login_failed)', async () => {
      await expectCounted(gw, 'login_failed', async () => {
        const res = await login(gw, 'admin', 'not-the-password', nextIp());
        expect(res.status).toBe(401);
        expectEnvelope(res.body, 'invalid_credentials', 'authentication_error');
      });
      const unknownUser = await login(gw, 'nobody-here', 'whatever-password', nextIp());
      expect(unknownUser.status).toBe(401);
      expectEnvelope(unknownUser.body, 'invalid_credentials', 'authentication_error');
    });

    it('answers 415 to a body that is neither JSON nor a form', async () => {
      for (const type of ['text/plain', 'application/xml']) {
        const res = await call(
          gw,
          '/auth/token',
          { 'content-type': type, 'x-forwarded-for': nextIp() },
          { method: 'POST', body: 'username=admin&password=x' },
        );
        expect(res.status).toBe(415);
        expectEnvelope(res.body, 'unsupported_media_type', 'invalid_request_error');
      }
    });

    it('answers 400 naming the missing field', async () => {
      const res = await call(
        gw,
        '/auth/token',
        { 'content-type': 'application/json', 'x-forwarded-for': nextIp() },
        { method: 'POST', body: JSON.stringify({ username: 'admin' }) },
      );
      expect(res.status).toBe(400);
      expect((res.body as Envelope).error.param).toBe('password');
    });

    it('locks a username after repeated failures, from any address (429 + Retry-After)', async () => {
      const password = randomBytes(12).toString('hex');
      secretsSeen.push(password);
      const username = `victim-${randomBytes(3).toString('hex')}`;
      await gw.gateway.app.get(UsersService).create({ username, password, role: 'admin' }, 'test');
      for (let i = 0; i < 3; i++)
        expect((await login(gw, username, 'wrong-password', nextIp())).status).toBe(401);
      const blocked = await login(gw, username, password, nextIp());
      expect(blocked.status).toBe(429);
      expectEnvelope(blocked.body, 'rate_limit_exceeded', 'rate_limit_error');
      const retryAfter = Number(blocked.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(600);
      // Another username is not affected.
      expect((await login(gw, 'admin', admin.password, nextIp())).status).toBe(200);
    });

    it('checks no more guesses than the username allows when they arrive at once', async () => {
      const password = randomBytes(12).toString('hex');
      secretsSeen.push(password);
      const username = `burst-${randomBytes(3).toString('hex')}`;
      await gw.gateway.app.get(UsersService).create({ username, password, role: 'admin' }, 'test');
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => login(gw, username, 'wrong-password', nextIp())),
      );
      const statuses = answers.map((a) => a.status).sort();
      // LOGIN_MAX_FAILURES_PER_USER is 3: three passwords checked, the rest refused unchecked.
      expect(statuses).toEqual([...Array(3).fill(401), ...Array(17).fill(429)]);
      expect((await login(gw, username, password, nextIp())).status).toBe(429);
    });

    it('does not count successful logins against their address', async () => {
      const ip = nextIp();
      for (let i = 0; i < 6; i++)
        expect((await login(gw, 'admin', admin.password, ip)).status).toBe(200);
      expect((await login(gw, 'ghost-ok', 'wrong-password', ip)).status).toBe(401);
    });

    it('locks an address after repeated failures across usernames', async () => {
      const ip = nextIp();
      for (let i = 0; i < 4; i++)
        expect((await login(gw, `ghost-${i}`, 'wrong-password', ip)).status).toBe(401);
      const blocked = await login(gw, 'admin', admin.password, ip);
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await login(gw, 'admin', admin.password, nextIp())).status).toBe(200);
    });
  });

  it('never writes a key, password or token into a log line', async () => {
    // Give the request logger a moment to flush the last lines.
    await new Promise((r) => setTimeout(r, 100));
    const text = gw.logText();
    expect(text.length).toBeGreaterThan(0);
    for (const secret of secretsSeen) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/sk-sy-[A-Za-z0-9]{8,}/);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/);
  });
});
