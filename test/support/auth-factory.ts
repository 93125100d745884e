import { randomBytes } from 'node:crypto';
import { ApiKeysService, UsersService } from '@app/auth';
import type { Scope } from '@app/auth';
import type { TestGateway } from './gateway';

export interface TestConsumer {
  userId: string;
  username: string;
  key: string;
  keyId: string;
}

/** A user with `credits` (default 1000) and one API key, made through the real services. */
export async function newConsumer(
  gw: TestGateway,
  options: {
    credits?: number;
    scopes?: Scope[];
    rateLimitPerMinute?: number;
    rateLimitPerHour?: number;
    expiresAt?: Date;
  } = {},
): Promise<TestConsumer> {
  const users = gw.gateway.app.get(UsersService);
  const keys = gw.gateway.app.get(ApiKeysService);
  const username = `user-${randomBytes(5).toString('hex')}`;
  const user = await users.create({ username, baseQuota: options.credits ?? 1000 }, 'test');
  const issued = await keys.create(
    {
      userId: user.id,
      name: 'test',
      scopes: options.scopes,
      rateLimitPerMinute: options.rateLimitPerMinute,
      rateLimitPerHour: options.rateLimitPerHour,
      expiresAt: options.expiresAt,
    },
    'test',
  );
  return { userId: user.id, username, key: issued.key, keyId: issued.id };
}

/** Creates (or resets) an admin with a random password and logs in over HTTP. */
export async function adminToken(
  gw: TestGateway,
  username = 'admin',
): Promise<{ token: string; password: string }> {
  const password = randomBytes(16).toString('hex');
  await gw.gateway.app.get(UsersService).setAdminPassword(username, password, 'test');
  const res = await fetch(`${gw.url}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.250' },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { access_token: string };
  return { token: body.access_token, password };
}
