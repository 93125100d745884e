import { call, Reply } from './support/api-call';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';

/**
 * An audit found the admin routes passing zod's raw wording through ("Invalid input: expected
 * number, received undefined") where /v1 says "amount: is required" / "amount: expected a
 * number", and POST /admin/sessions storing an expires_at already in the past (keys refuse it).
 * A second audit found a user_id in a body worded and coded unlike the same id in a path
 * (invalid_request, not invalid_id), recalculate and cycle-reset answering 200 for a user that
 * does not exist, and wrong types on /admin/sessions and clear-stuck worded by their schemas.
 */
describe('admin validation words absent and wrongly typed fields like /v1', () => {
  let gw: TestGateway;
  let admin: string;
  let consumer: TestConsumer;

  const asAdmin = (method: string, route: string, body?: unknown) =>
    call(gw, method, route, admin, body);

  const expect400 = (res: Reply, message: string, param: string, code = 'invalid_request') => {
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ type: 'invalid_request_error', code, message, param });
  };

  beforeAll(async () => {
    gw = await startGateway();
    admin = (await adminToken(gw)).token;
    consumer = await newConsumer(gw);
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('POST /admin/users: an absent username, a base_quota that is not a number', async () => {
    expect400(await asAdmin('POST', '/admin/users', {}), 'username: is required', 'username');
    expect400(
      await asAdmin('POST', '/admin/users', { username: 'v-user', base_quota: '5' }),
      'base_quota: expected a number',
      'base_quota',
    );
  });

  it('POST /admin/keys: an absent user_id, a rate limit that is not a number', async () => {
    expect400(
      await asAdmin('POST', '/admin/keys', { name: 'k' }),
      'user_id: is required',
      'user_id',
    );
    expect400(
      await asAdmin('POST', '/admin/keys', {
        user_id: consumer.userId,
        name: 'k',
        rate_limit_per_minute: '60',
      }),
      'rate_limit_per_minute: expected a number',
      'rate_limit_per_minute',
    );
  });

  it('POST /admin/credits/grant: an absent amount, an amount that is not a number', async () => {
    expect400(
      await asAdmin('POST', '/admin/credits/grant', { user_id: consumer.userId }),
      'amount: is required',
      'amount',
    );
    expect400(
      await asAdmin('POST', '/admin/credits/grant', { user_id: consumer.userId, amount: '100' }),
      'amount: expected a number',
      'amount',
    );
    expect400(
      await asAdmin('POST', '/admin/credits/grant', { user_id: consumer.userId, amount: 1.5 }),
      'amount: expected an integer',
      'amount',
    );
  });

  it('POST /admin/sessions: an absent cookie_text or provider is required', async () => {
    expect400(
      await asAdmin('POST', '/admin/sessions', { provider: 'grok' }),
      'cookie_text: is required',
      'cookie_text',
    );
    expect400(
      await asAdmin('POST', '/admin/sessions', { cookie_text: 'sso=admin-validation-0001' }),
      'provider: is required',
      'provider',
    );
  });

  it('POST /admin/circuit-breakers/:name/force-open: a durationMs that is not a number', async () => {
    expect400(
      await asAdmin('POST', '/admin/circuit-breakers/mock/force-open', { durationMs: 'soon' }),
      'durationMs: expected a number',
      'durationMs',
    );
    expect400(
      await asAdmin('POST', '/admin/circuit-breakers/mock/force-open', { durationMs: null }),
      'durationMs: expected a number',
      'durationMs',
    );
  });

  it('POST /admin/sessions refuses an expires_at in the past, as /admin/keys does', async () => {
    const res = await asAdmin('POST', '/admin/sessions', {
      cookie_text: 'sso=admin-validation-past-9999',
      provider: 'grok',
      expires_at: new Date(Date.now() - 60_000).toISOString(),
    });
    expect400(res, 'expires_at must be in the future', 'expires_at');
    const list = await asAdmin('GET', '/admin/sessions');
    const previews = (list.body.sessions as { credential_preview: string }[]).map(
      (s) => s.credential_preview,
    );
    expect(previews).not.toContain('sso=…9999');
  });

  it('POST /admin/sessions: a cookie_text, provider, expires_at or metadata of the wrong type', async () => {
    const session = { cookie_text: 'sso=admin-validation-types-0001', provider: 'grok' };
    for (const [field, value, message] of [
      ['cookie_text', 1, 'cookie_text: expected a string'],
      ['provider', 1, 'provider: expected a string'],
      ['expires_at', 42, 'expires_at: expected a string'],
      ['metadata', [1], 'metadata: expected an object'],
    ] as const)
      expect400(
        await asAdmin('POST', '/admin/sessions', { ...session, [field]: value }),
        message,
        field,
      );
    // A string in the wrong format keeps its own message.
    expect400(
      await asAdmin('POST', '/admin/sessions', { ...session, expires_at: 'soon' }),
      'expires_at must be an ISO 8601 date-time',
      'expires_at',
    );
  });

  it('POST /admin/jobs/clear-stuck: an older_than_minutes that is not a number', async () => {
    expect400(
      await asAdmin('POST', '/admin/jobs/clear-stuck', { older_than_minutes: '5' }),
      'older_than_minutes: expected a number',
      'older_than_minutes',
    );
    expect400(
      await asAdmin('POST', '/admin/jobs/clear-stuck', { older_than_minutes: 0 }),
      'older_than_minutes must be at least 1',
      'older_than_minutes',
    );
  });

  describe('a user_id in a body', () => {
    /** A well-formed id (version 4) that names no user. */
    const NO_USER = '00000000-0000-4000-8000-000000000000';

    it('malformed, is 400 invalid_id worded as in a path or a query, on every admin route', async () => {
      const inPath = await asAdmin('GET', '/admin/credits/users/bad');
      const inQuery = await asAdmin('GET', '/admin/keys?user_id=bad');
      const message = 'user_id must be a UUID';
      expect400(inPath, message, 'user_id', 'invalid_id');
      expect400(inQuery, message, 'user_id', 'invalid_id');
      for (const [route, body] of [
        ['/admin/credits/grant', { user_id: 'bad', amount: 1 }],
        ['/admin/credits/adjust', { user_id: 'bad', amount: 1, description: 'x' }],
        ['/admin/credits/recalculate', { user_id: 'bad' }],
        ['/admin/credits/cycle-reset', { user_id: 'bad' }],
        ['/admin/keys', { user_id: 'nope', name: 'k' }],
      ] as const)
        expect400(await asAdmin('POST', route, body), message, 'user_id', 'invalid_id');
    });

    it('of no user, is 404 user_not_found on recalculate and cycle-reset and is not audited', async () => {
      for (const route of ['/admin/credits/recalculate', '/admin/credits/cycle-reset']) {
        const res = await asAdmin('POST', route, { user_id: NO_USER });
        expect({ route, status: res.status }).toEqual({ route, status: 404 });
        expect(res.body.error).toMatchObject({
          type: 'not_found_error',
          code: 'user_not_found',
          param: 'user_id',
        });
      }
      const audit = await asAdmin('GET', '/admin/audit?action=credits.recalculate&limit=200');
      expect(audit.status).toBe(200);
      const targets = (audit.body.data as { target: string | null }[]).map((r) => r.target);
      expect(targets).not.toContain(NO_USER);
      // An existing user (in upper case, as a client may send it) is still recalculated.
      const known = await asAdmin('POST', '/admin/credits/recalculate', {
        user_id: consumer.userId.toUpperCase(),
      });
      expect(known.status).toBe(200);
      expect(known.body).toEqual({ changed: [], unfixable: [] });
    });
  });
});
