import { randomBytes, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { adminToken } from './support/auth-factory';
import { installAuthProbe } from './support/auth-probe';
import { startGateway, TestGateway } from './support/gateway';

installAuthProbe();

interface KeyBody {
  id: string;
  key: string;
  prefix: string;
  user_id: string;
  name: string;
  scopes: string[];
  rate_limit_per_minute: number | null;
  rate_limit_per_hour: number | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  created_at: string;
  status: string;
  old_key?: KeyBody;
  rotated_from?: string | null;
}

interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

interface ErrorBody {
  error: { code: string; type: string; param: string | null; message: string };
}

describe('admin API: users, keys, audit', () => {
  let gw: TestGateway;
  let token: string;
  const secrets: string[] = [];

  async function api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${gw.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  async function probe(key: string, route = 'chat'): Promise<number> {
    return (await fetch(`${gw.url}/probe/${route}`, { headers: { 'x-api-key': key } })).status;
  }

  async function newUser(baseQuota = 0): Promise<{ id: string; username: string }> {
    const username = `u-${randomBytes(4).toString('hex')}`;
    const res = await api<{ id: string }>('POST', '/admin/users', {
      username,
      base_quota: baseQuota,
    });
    expect(res.status).toBe(201);
    return { id: res.body.id, username };
  }

  async function newKey(userId: string, extra: Record<string, unknown> = {}): Promise<KeyBody> {
    const res = await api<KeyBody>('POST', '/admin/keys', { user_id: userId, name: 'k', ...extra });
    expect(res.status).toBe(201);
    secrets.push(res.body.key);
    return res.body;
  }

  beforeAll(async () => {
    gw = await startGateway({ env: { LOGIN_RATE_LIMIT_PER_MINUTE: '1000' } });
    ({ token } = await adminToken(gw));
    secrets.push(token);
  });

  afterAll(async () => {
    await gw.close();
  });

  describe('users', () => {
    it('creates a user whose base_quota becomes a ledger grant', async () => {
      const res = await api<Record<string, unknown>>('POST', '/admin/users', {
        username: 'alice',
        email: 'alice@example.com',
        role: 'user',
        base_quota: 2500,
      });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        username: 'alice',
        email: 'alice@example.com',
        role: 'user',
        subscription_tier: 'free',
        balance: 2500,
        base_quota: 2500,
        created_at: expect.any(String),
      });
      expect(JSON.stringify(res.body)).not.toContain('password');
      const db = new Client({ connectionString: gw.databaseUrl });
      await db.connect();
      try {
        const { rows } = await db.query(
          `SELECT event_type, amount, balance_after FROM credit_ledger WHERE user_id = $1`,
          [res.body.id],
        );
        expect(rows).toEqual([{ event_type: 'grant', amount: '2500', balance_after: '2500' }]);
      } finally {
        await db.end();
      }
    });

    it('refuses a taken username with 409 and bad bodies with 400 naming the field', async () => {
      const dup = await api<ErrorBody>('POST', '/admin/users', { username: 'alice' });
      expect(dup.status).toBe(409);
      expect(dup.body.error.param).toBe('username');
      const cases: [unknown, string][] = [
        [{ username: 'bob', base_quota: -1 }, 'base_quota'],
        [{ username: 'bob', base_quota: 1.5 }, 'base_quota'],
        [{ username: 'bob', role: 'root' }, 'role'],
        [{ username: 'bob', password: 'short' }, 'password'],
        [{ username: 'bob', email: 'not-an-email' }, 'email'],
        [{ username: '' }, 'username'],
        [{ username: 'bob', is_admin: true }, 'is_admin'],
        [{}, 'username'],
      ];
      for (const [body, param] of cases) {
        const res = await api<ErrorBody>('POST', '/admin/users', body);
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({ type: 'invalid_request_error', param });
      }
    });

    it('pages users with limit and cursor', async () => {
      for (let i = 0; i < 3; i++) await newUser();
      const seen = new Set<string>();
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = cursor ? `?limit=2&cursor=${cursor}` : '?limit=2';
        const res = await api<Page<{ id: string }>>('GET', `/admin/users${query}`);
        expect(res.status).toBe(200);
        expect(res.body.data.length).toBeLessThanOrEqual(2);
        for (const u of res.body.data) {
          expect(seen.has(u.id)).toBe(false);
          seen.add(u.id);
        }
        cursor = res.body.next_cursor;
        pages++;
      } while (cursor && pages < 20);
      const all = await api<Page<{ id: string }>>('GET', '/admin/users?limit=200');
      expect(seen.size).toBe(all.body.data.length);
      expect(seen.size).toBeGreaterThanOrEqual(5);
      expect((await api('GET', '/admin/users?limit=0')).status).toBe(400);
      expect((await api('GET', '/admin/users?cursor=garbage')).status).toBe(400);
    });

    it('answers 400 for a malformed user id and 404 for an unknown one', async () => {
      expect((await api('GET', '/admin/users/not-a-uuid')).status).toBe(400);
      expect((await api('GET', `/admin/users/${randomUUID()}`)).status).toBe(404);
    });
  });

  describe('keys', () => {
    it('creates a key with the documented shape, shown once', async () => {
      const user = await newUser();
      const res = await api<KeyBody>('POST', '/admin/keys', {
        user_id: user.id,
        name: 'ci',
        scopes: ['chat', 'jobs'],
        rate_limit_per_minute: 30,
        rate_limit_per_hour: 900,
      });
      expect(res.status).toBe(201);
      secrets.push(res.body.key);
      expect(res.body).toMatchObject({
        id: expect.any(String),
        key: expect.stringMatching(/^sk-sy-[0-9A-Za-z]{40}$/),
        user_id: user.id,
        name: 'ci',
        scopes: ['chat', 'jobs'],
        rate_limit_per_minute: 30,
        rate_limit_per_hour: 900,
        expires_at: null,
        created_at: expect.any(String),
      });
      expect(res.body.prefix).toBe(res.body.key.slice(0, 10));
      const listed = await api<Page<Record<string, unknown>>>(
        'GET',
        `/admin/keys?user_id=${user.id}`,
      );
      expect(listed.body.data).toHaveLength(1);
      expect(listed.body.data[0]).not.toHaveProperty('key');
      expect(listed.body.data[0]).not.toHaveProperty('key_hash');
      expect(JSON.stringify(listed.body)).not.toContain(res.body.key);
      expect(await probe(res.body.key)).toBe(200);
      expect(await probe(res.body.key, 'images')).toBe(403);
    });

    it('validates key bodies (400 with param) and unknown users (404)', async () => {
      const user = await newUser();
      const cases: [unknown, string][] = [
        [{ name: 'x' }, 'user_id'],
        [{ user_id: 'nope', name: 'x' }, 'user_id'],
        [{ user_id: user.id }, 'name'],
        [{ user_id: user.id, name: 'x', scopes: ['admin'] }, 'scopes.0'],
        [{ user_id: user.id, name: 'x', scopes: [] }, 'scopes'],
        [{ user_id: user.id, name: 'x', rate_limit_per_minute: 0 }, 'rate_limit_per_minute'],
        [{ user_id: user.id, name: 'x', expires_at: '2001-01-01T00:00:00Z' }, 'expires_at'],
        [{ user_id: user.id, name: 'x', expires_at: 'tomorrow' }, 'expires_at'],
        [{ user_id: user.id, name: 'x', colour: 'red' }, 'colour'],
      ];
      for (const [body, param] of cases) {
        const res = await api<ErrorBody>('POST', '/admin/keys', body);
        expect(res.status).toBe(400);
        expect(res.body.error.param).toBe(param);
      }
      const missing = await api<ErrorBody>('POST', '/admin/keys', {
        user_id: randomUUID(),
        name: 'x',
      });
      expect(missing.status).toBe(404);
    });

    it('applies PATCH at once: scopes, limits and name', async () => {
      const user = await newUser();
      const key = await newKey(user.id);
      expect(await probe(key.key, 'images')).toBe(200);
      const patched = await api<KeyBody>('PATCH', `/admin/keys/${key.id}`, {
        scopes: ['chat'],
        rate_limit_per_minute: 5,
        name: 'renamed',
      });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ scopes: ['chat'], rate_limit_per_minute: 5 });
      expect(patched.body).not.toHaveProperty('key');
      expect(await probe(key.key, 'images')).toBe(403);
      const principal = await fetch(`${gw.url}/probe/chat`, { headers: { 'x-api-key': key.key } });
      expect(((await principal.json()) as { rateLimitPerMinute: number }).rateLimitPerMinute).toBe(
        5,
      );
      const cleared = await api<KeyBody>('PATCH', `/admin/keys/${key.id}`, {
        rate_limit_per_minute: null,
      });
      expect(cleared.body.rate_limit_per_minute).toBeNull();
    });

    it('answers 400 for malformed ids and 404 for unknown ones on every key route', async () => {
      for (const [method, suffix] of [
        ['GET', ''],
        ['PATCH', ''],
        ['DELETE', ''],
        ['POST', '/rotate'],
      ] as const) {
        const body = method === 'PATCH' ? { name: 'x' } : method === 'POST' ? {} : undefined;
        const bad = await api<ErrorBody>(method, `/admin/keys/123${suffix}`, body);
        expect(bad.status).toBe(400);
        expect(bad.body.error.param).toBe('id');
        const unknown = await api(method, `/admin/keys/${randomUUID()}${suffix}`, body);
        expect(unknown.status).toBe(404);
      }
      expect((await api('GET', '/admin/keys?user_id=bad')).status).toBe(400);
    });

    it('rotates: new key returned once, old one valid until the grace period ends', async () => {
      const user = await newUser();
      const old = await newKey(user.id, { scopes: ['chat'], rate_limit_per_hour: 77 });
      expect(await probe(old.key)).toBe(200);
      const rotated = await api<KeyBody>('POST', `/admin/keys/${old.id}/rotate`, {
        grace_period_seconds: 2,
      });
      expect(rotated.status).toBe(201);
      secrets.push(rotated.body.key);
      expect(rotated.body.key).toMatch(/^sk-sy-/);
      expect(rotated.body.key).not.toBe(old.key);
      expect(rotated.body).toMatchObject({
        user_id: user.id,
        scopes: ['chat'],
        rate_limit_per_hour: 77,
        rotated_from: old.id,
      });
      expect(rotated.body.old_key).toMatchObject({ id: old.id, status: 'rotating' });
      const twice = await api<ErrorBody>('POST', `/admin/keys/${old.id}/rotate`, {});
      expect(twice.status).toBe(409);
      expect(twice.body.error.code).toBe('key_rotating');
      expect(await probe(old.key)).toBe(200);
      expect(await probe(rotated.body.key)).toBe(200);
      await new Promise((r) => setTimeout(r, 2200));
      const after = await fetch(`${gw.url}/probe/chat`, { headers: { 'x-api-key': old.key } });
      expect(after.status).toBe(401);
      expect(((await after.json()) as ErrorBody).error.code).toBe('key_revoked');
      expect(await probe(rotated.body.key)).toBe(200);
      const again = await api<ErrorBody>('POST', `/admin/keys/${old.id}/rotate`, {});
      expect(again.status).toBe(409);
      const expiring = await newKey(user.id, {
        expires_at: new Date(Date.now() + 1000).toISOString(),
      });
      await new Promise((r) => setTimeout(r, 1100));
      const expired = await api<ErrorBody>('POST', `/admin/keys/${expiring.id}/rotate`, {});
      expect(expired.status).toBe(409);
      expect(expired.body.error.code).toBe('key_expired');
    });

    it('rotates a key once when rotations race: one replacement, the others 409 key_rotating', async () => {
      const user = await newUser();
      const old = await newKey(user.id);
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => api<KeyBody>('POST', `/admin/keys/${old.id}/rotate`, {})),
      );
      const created = answers.filter((a) => a.status === 201);
      expect(created).toHaveLength(1);
      secrets.push(created[0].body.key);
      expect(answers.filter((a) => a.status === 409)).toHaveLength(3);
      const keys = await api<{ data: KeyBody[] }>('GET', `/admin/keys?user_id=${user.id}`);
      expect(keys.body.data.filter((k) => k.rotated_from === old.id)).toHaveLength(1);
    });

    it('rotates with a 24 h grace period by default', async () => {
      const user = await newUser();
      const old = await newKey(user.id);
      const started = Date.now();
      const res = await fetch(`${gw.url}/admin/keys/${old.id}/rotate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(201);
      const body = (await res.json()) as KeyBody;
      secrets.push(body.key);
      const revokeAt = Date.parse(body.old_key!.revoked_at!);
      expect(revokeAt - started).toBeGreaterThan(24 * 3600 * 1000 - 60_000);
      expect(revokeAt - started).toBeLessThan(24 * 3600 * 1000 + 60_000);
      expect(await probe(old.key)).toBe(200);
      const bad = await api<ErrorBody>('POST', `/admin/keys/${body.id}/rotate`, {
        grace_period_seconds: -1,
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.param).toBe('grace_period_seconds');
    });

    it('revokes with DELETE at once; a second DELETE answers the same', async () => {
      const user = await newUser();
      const key = await newKey(user.id);
      expect(await probe(key.key)).toBe(200);
      const first = await api<KeyBody>('DELETE', `/admin/keys/${key.id}`);
      expect(first.status).toBe(200);
      expect(first.body.status).toBe('revoked');
      expect(await probe(key.key)).toBe(401);
      const second = await api<KeyBody>('DELETE', `/admin/keys/${key.id}`);
      expect(second.status).toBe(200);
      expect(second.body.revoked_at).toBe(first.body.revoked_at);
    });

    it('records last_used_at in the background', async () => {
      const user = await newUser();
      const key = await newKey(user.id);
      expect(await probe(key.key)).toBe(200);
      const deadline = Date.now() + 15_000;
      let lastUsed: string | null = null;
      while (Date.now() < deadline && !lastUsed) {
        await new Promise((r) => setTimeout(r, 250));
        lastUsed = (await api<KeyBody>('GET', `/admin/keys/${key.id}`)).body.last_used_at;
      }
      expect(lastUsed).not.toBeNull();
    });
  });

  describe('audit', () => {
    it('records every admin change with actor, action and target, without secrets', async () => {
      const user = await newUser(10);
      const key = await newKey(user.id);
      await api('PATCH', `/admin/keys/${key.id}`, { name: 'audited' });
      await api('PATCH', `/admin/keys/${key.id}`, {});
      const rotated = await api<KeyBody>('POST', `/admin/keys/${key.id}/rotate`, {
        grace_period_seconds: 0,
      });
      secrets.push(rotated.body.key);
      await api('DELETE', `/admin/keys/${rotated.body.id}`);
      const res = await api<Page<Record<string, unknown>>>('GET', '/admin/audit?limit=200');
      expect(res.status).toBe(200);
      const mine = res.body.data.filter(
        (e) => e.target === user.id || e.target === key.id || e.target === rotated.body.id,
      );
      expect(mine.map((e) => e.action).sort()).toEqual(
        [
          'user.create',
          'api_key.create',
          'api_key.update',
          'api_key.rotate',
          'api_key.revoke',
        ].sort(),
      );
      for (const entry of mine) {
        expect(entry).toMatchObject({ actor: 'admin', id: expect.any(String) });
        expect(Number.isNaN(Date.parse(String(entry.created_at)))).toBe(false);
      }
      const text = JSON.stringify(res.body);
      for (const secret of secrets) expect(text).not.toContain(secret);
      expect(text).not.toMatch(/[0-9a-f]{64}/);
    });

    it('pages the audit log and filters by action', async () => {
      const page1 = await api<Page<{ id: string }>>('GET', '/admin/audit?limit=2');
      expect(page1.body.data).toHaveLength(2);
      expect(page1.body.next_cursor).toEqual(expect.any(String));
      const page2 = await api<Page<{ id: string }>>(
        'GET',
        `/admin/audit?limit=2&cursor=${page1.body.next_cursor}`,
      );
      expect(page2.body.data.length).toBeGreaterThan(0);
      expect(page2.body.data.map((e) => e.id)).not.toContain(page1.body.data[0].id);
      const creates = await api<Page<{ action: string }>>(
        'GET',
        '/admin/audit?action=user.create&limit=200',
      );
      expect(creates.body.data.length).toBeGreaterThan(0);
      expect(new Set(creates.body.data.map((e) => e.action))).toEqual(new Set(['user.create']));
    });

    it('is refused without an admin token', async () => {
      expect((await fetch(`${gw.url}/admin/audit`)).status).toBe(401);
    });
  });

  it('never logs a key or token', () => {
    const text = gw.logText();
    for (const secret of secrets) expect(text).not.toContain(secret);
  });
});
