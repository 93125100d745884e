import { createHash } from 'node:crypto';
import { Client } from 'pg';
import { SessionPoolService } from '@app/sessions';
import { adminToken, newConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

async function sql<T = Record<string, unknown>>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

interface SessionBody {
  id: string;
  provider: string;
  status: string;
  failure_rate: number;
  credential_preview: string;
  metadata: Record<string, unknown>;
  [key: string]: unknown;
}

describe('admin API: /admin/sessions (seed 000)', () => {
  let gw: TestGateway;
  let token: string;
  const secrets = [
    'sso=admin-api-secret-cookie-0001',
    'sso=admin-api-secret-cookie-0002',
    'sso=HAND_INSERTED_ADMIN_0003',
  ];

  const call = async (method: string, path: string, body?: unknown, bearer = token) => {
    const res = await fetch(`${gw.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${bearer}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    gw = await startGateway();
    token = (await adminToken(gw)).token;
  });
  afterAll(async () => {
    await gw.close();
  });

  it('adds a session (201) with the credential masked and encrypted at rest', async () => {
    const res = await call('POST', '/admin/sessions', {
      cookie_text: secrets[0],
      provider: 'grok',
      metadata: { source: 'manual_add' },
    });
    expect(res.status).toBe(201);
    const session = res.json as SessionBody;
    expect(session).toMatchObject({
      provider: 'grok',
      status: 'healthy',
      failure_rate: 0,
      metadata: { source: 'manual_add' },
      credential_preview: 'sso=…0001',
    });
    expect(res.text).not.toContain('admin-api-secret');
    const [row] = await sql<{ cookie_text: string; cookie_hash: string }>(
      gw.databaseUrl,
      'SELECT cookie_text, cookie_hash FROM sessions WHERE id = $1',
      [session.id],
    );
    expect(row.cookie_text.startsWith('enc:v1:')).toBe(true);
    expect(row.cookie_hash).toBe(sha256(secrets[0]));
  });

  it('masks a padded base64 token too (the text before its "=" is the secret)', async () => {
    // openssl rand -base64 16, and base64 of "user:password": bearer tokens of this shape are
    // common, and the preview once showed all of them but the padding as a "cookie name".
    const tokens = ['f20G6grsCio7HR9WlZ9kYQ==', 'c3ZjLXVzZXI6UzNjcmV0UGFzc3cwcmQ='];
    for (const token of tokens) {
      const res = await call('POST', '/admin/sessions', { cookie_text: token, provider: 'grok' });
      expect(res.status).toBe(201);
      expect((res.json as SessionBody).credential_preview).toBe(`…${token.slice(-4)}`);
    }
    const list = await call('GET', '/admin/sessions');
    for (const token of tokens) expect(list.text).not.toContain(token.slice(0, -4));
  });

  it('refuses a duplicate credential with 409 in the OpenAI envelope', async () => {
    const res = await call('POST', '/admin/sessions', {
      cookie_text: secrets[0],
      provider: 'grok',
    });
    expect(res.status).toBe(409);
    expect(res.json.error).toMatchObject({ code: 'duplicate_session', param: null });
    expect(res.text).not.toContain('admin-api-secret');
  });

  it('rejects bad input with 400 naming the field', async () => {
    const cases: [unknown, string | null][] = [
      [{ provider: 'grok' }, 'cookie_text'],
      [{ cookie_text: '   ', provider: 'grok' }, 'cookie_text'],
      [{ cookie_text: 'sso=a\r\nX-Injected: 1', provider: 'grok' }, 'cookie_text'],
      // Pasted typographic characters: no HTTP header can carry them, so every use would fail.
      [{ cookie_text: 'sso=abc\u2019def-credential', provider: 'grok' }, 'cookie_text'],
      [{ cookie_text: 'tok\u2026en-0123456789abcdef', provider: 'grok' }, 'cookie_text'],
      [{ cookie_text: 'sso=x', provider: '' }, 'provider'],
      [{ cookie_text: 'sso=x', provider: 'grok', metadata: [1] }, 'metadata'],
      [{ cookie_text: 'sso=x', provider: 'grok', expires_at: 'soon' }, 'expires_at'],
      [{ cookie_text: 42, provider: 'grok' }, 'cookie_text'],
      [[], null],
    ];
    for (const [body, param] of cases) {
      const res = await call('POST', '/admin/sessions', body);
      expect(res.status).toBe(400);
      expect(res.json.error).toMatchObject({ type: 'invalid_request_error', param });
    }
  });

  it('lists sessions as {sessions:[…]} for the seed jq commands, newest last', async () => {
    await call('POST', '/admin/sessions', { cookie_text: secrets[1], provider: 'grok' });
    const res = await call('GET', '/admin/sessions');
    expect(res.status).toBe(200);
    const sessions = res.json.sessions as SessionBody[];
    expect(sessions.length).toBeGreaterThanOrEqual(2);
    expect(sessions[sessions.length - 1].credential_preview).toBe('sso=…0002');
    for (const s of sessions)
      for (const field of [
        'id',
        'provider',
        'status',
        'failure_rate',
        'success_count',
        'failure_count',
        'last_used_at',
        'last_checked_at',
        'expires_at',
        'metadata',
        'credential_preview',
      ])
        expect(s).toHaveProperty(field);
    expect(res.text).not.toContain('admin-api-secret');
  });

  it('shows a hand-inserted (seed 000 SQL) session encrypted and masked', async () => {
    await sql(
      gw.databaseUrl,
      `INSERT INTO sessions (cookie_text, cookie_hash, provider, status)
       VALUES ($1, encode(sha256($2::bytea), 'hex'), 'grok', 'healthy')`,
      [secrets[2], secrets[2]],
    );
    const res = await call('GET', '/admin/sessions');
    expect(res.text).not.toContain('HAND_INSERTED');
    expect(res.json.sessions.map((s: SessionBody) => s.credential_preview)).toContain('sso=…0003');
    const plain = await sql(
      gw.databaseUrl,
      `SELECT id FROM sessions WHERE cookie_text NOT LIKE 'enc:v1:%'`,
    );
    expect(plain).toHaveLength(0);
  });

  it('quarantines and reactivates a session, and takes it out of and back into rotation', async () => {
    const { json: added } = await call('POST', '/admin/sessions', {
      cookie_text: 'sso=rotation-toggle-credential',
      provider: 'toggle',
    });
    const pool = gw.gateway.app.get(SessionPoolService);
    const q = await call('PATCH', `/admin/sessions/${added.id}/quarantine`);
    expect(q.status).toBe(200);
    expect(q.json).toMatchObject({ id: added.id, status: 'quarantined' });
    expect(await pool.tryAcquire('toggle')).toBeNull();
    const a = await call('PATCH', `/admin/sessions/${added.id}/activate`);
    expect(a.status).toBe(200);
    expect(a.json).toMatchObject({ id: added.id, status: 'healthy', failure_rate: 0 });
    expect((await pool.acquire('toggle')).id).toBe(added.id);
    const one = await call('GET', `/admin/sessions/${added.id}`);
    expect(one.json.last_used_at).not.toBeNull();
  });

  it('deletes a session', async () => {
    const { json: added } = await call('POST', '/admin/sessions', {
      cookie_text: 'sso=to-be-deleted-credential',
      provider: 'gone',
    });
    const del = await call('DELETE', `/admin/sessions/${added.id}`);
    expect(del.status).toBe(200);
    expect(del.json).toEqual({ id: added.id, deleted: true });
    expect((await call('DELETE', `/admin/sessions/${added.id}`)).status).toBe(404);
    expect((await call('GET', `/admin/sessions/${added.id}`)).json.error.code).toBe(
      'session_not_found',
    );
  });

  it('answers 400 for a malformed id and 404 for an unknown one', async () => {
    const bad = await call('PATCH', '/admin/sessions/not-a-uuid/activate');
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe('id');
    const unknown = await call(
      'PATCH',
      '/admin/sessions/00000000-0000-4000-8000-000000000000/quarantine',
    );
    expect(unknown.status).toBe(404);
  });

  it('runs a health check on demand', async () => {
    const res = await call('POST', '/admin/sessions/health-check');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      trigger: 'manual',
      checked: expect.any(Number),
      reactivated: expect.any(Number),
      still_quarantined: expect.any(Number),
    });
    expect(gw.logText()).toContain('Health check complete');
  });

  it('writes an audit row for every change, without the credential', async () => {
    const rows = await sql<{ action: string; actor: string; details: unknown }>(
      gw.databaseUrl,
      `SELECT action, actor, details FROM audit_log WHERE action LIKE 'session.%'`,
    );
    const actions = new Set(rows.map((r) => r.action));
    for (const action of [
      'session.create',
      'session.quarantine',
      'session.activate',
      'session.delete',
      'session.health_check',
    ])
      expect(actions).toContain(action);
    expect(rows.every((r) => r.actor === 'admin')).toBe(true);
    expect(JSON.stringify(rows)).not.toContain('sso=');
  });

  it('refuses callers without an admin JWT', async () => {
    expect((await call('GET', '/admin/sessions', undefined, 'not-a-jwt')).status).toBe(401);
    const consumer = await newConsumer(gw);
    const res = await call('GET', '/admin/sessions', undefined, consumer.key);
    expect(res.status).toBe(401);
    const anonymous = await fetch(`${gw.url}/admin/sessions`);
    expect(anonymous.status).toBe(401);
  });

  it('never logs a credential', () => {
    const text = gw.logText();
    for (const secret of [...secrets, 'rotation-toggle-credential']) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(secret.slice(4));
    }
  });
});
