import { call, Reply } from './support/api-call';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';

/**
 * An audit found the admin routes passing zod's raw wording through ("Invalid input: expected
 * number, received undefined") where /v1 says "amount: is required" / "amount: expected a
 * number", and POST /admin/sessions storing an expires_at already in the past (keys refuse it).
 */
describe('admin validation words absent and wrongly typed fields like /v1', () => {
  let gw: TestGateway;
  let admin: string;
  let consumer: TestConsumer;

  const asAdmin = (method: string, route: string, body?: unknown) =>
    call(gw, method, route, admin, body);

  const expect400 = (res: Reply, message: string, param: string) => {
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      type: 'invalid_request_error',
      code: 'invalid_request',
      message,
      param,
    });
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
});
