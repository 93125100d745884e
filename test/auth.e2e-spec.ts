import { startGateway, TestGateway } from './support/gateway';
import { adminToken, newConsumer } from './support/auth-factory';

describe('auth smoke', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { API_KEYS: 'boot-key-one-123456,boot-key-two-654321' } });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('logs in and lists users', async () => {
    const { token } = await adminToken(gw);
    const res = await fetch(`${gw.url}/admin/users`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.data.map((u: { username: string }) => u.username)).toEqual(
      expect.arrayContaining(['admin', 'bootstrap']),
    );
    const c = await newConsumer(gw);
    expect(c.key).toMatch(/^sk-sy-/);
  });
});
