import { randomBytes, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import pino from 'pino';
import { loadConfig } from '@app/config';
import { DatabaseService } from '@app/database';
import { ApiError } from '@app/observability';
import { testEnv, withDatabase } from '../../../test/support/test-env';
import { IdempotencyRepository, StoredResponse } from './idempotency.repository';
import {
  canonicalJson,
  IdempotencyService,
  parseIdempotencyKey,
  requestHashOf,
} from './idempotency.service';

describe('canonicalJson / requestHashOf', () => {
  it('ignores key order and undefined fields, but not values, routes or methods', () => {
    expect(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }], u: undefined })).toBe(
      '{"a":[1,{"c":3,"d":2}],"b":1}',
    );
    const base = { method: 'POST', route: '/v1/chat/completions', body: { a: 1, b: 2 } };
    expect(requestHashOf(base)).toBe(requestHashOf({ ...base, body: { b: 2, a: 1 } }));
    expect(requestHashOf(base)).not.toBe(requestHashOf({ ...base, body: { a: 1, b: 3 } }));
    expect(requestHashOf(base)).not.toBe(
      requestHashOf({ ...base, route: '/v1/images/generations' }),
    );
  });

  it('validates the header value; only an absent header means no key', () => {
    expect(parseIdempotencyKey(undefined)).toBeUndefined();
    expect(parseIdempotencyKey('abc-123')).toBe('abc-123');
    expect(parseIdempotencyKey(['abc-123', 'other'])).toBe('abc-123');
    for (const bad of ['', '   ', 'x'.repeat(256), 'has space', 'é', []]) {
      let error: unknown;
      try {
        parseIdempotencyKey(bad);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ApiError);
      expect(error).toMatchObject({
        status: 400,
        code: 'invalid_idempotency_key',
        param: 'Idempotency-Key',
      });
    }
  });
});

describe('IdempotencyService against Postgres', () => {
  let dbName: string;
  let db: DatabaseService;
  let pg: Client;
  let service: IdempotencyService;

  beforeAll(async () => {
    dbName = `sy_idem_${randomBytes(5).toString('hex')}`;
    const admin = new Client({ connectionString: testEnv.adminDatabaseUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName} TEMPLATE ${testEnv.templateDatabase}`);
    await admin.end();
    const url = withDatabase(testEnv.adminDatabaseUrl, dbName);
    db = new DatabaseService(
      loadConfig({ NODE_ENV: 'test', DATABASE_URL: url }),
      pino({ level: 'silent' }),
    );
    await db.connect();
    pg = new Client({ connectionString: url });
    await pg.connect();
    service = new IdempotencyService(new IdempotencyRepository(db));
  });

  afterAll(async () => {
    await pg.end();
    await db.onApplicationShutdown();
    const admin = new Client({ connectionString: testEnv.adminDatabaseUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  });

  const newUser = async () => {
    const id = randomUUID();
    await pg.query(`INSERT INTO users (id, username) VALUES ($1, $2)`, [id, `u-${id}`]);
    return id;
  };
  const request = (userId: string, body: unknown = { prompt: 'hi' }) => ({
    userId,
    key: 'key-1',
    method: 'POST',
    route: '/v1/chat/completions',
    body,
  });
  const ok = (n: number): StoredResponse => ({
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: { n },
  });

  it('runs once and replays the stored response for the same body', async () => {
    const user = await newUser();
    let runs = 0;
    const first = await service.run(request(user), async () => ok(++runs));
    const second = await service.run(request(user), async () => ok(++runs));
    expect(runs).toBe(1);
    expect(first).toMatchObject({ replayed: false, body: { n: 1 } });
    expect(second).toMatchObject({ replayed: true, status: 200, body: { n: 1 } });
  });

  it('answers 409 idempotency_conflict for the same key with a different body', async () => {
    const user = await newUser();
    await service.run(request(user), async () => ok(1));
    await expect(
      service.run(request(user, { prompt: 'other' }), async () => ok(2)),
    ).rejects.toMatchObject({
      status: 409,
      code: 'idempotency_conflict',
    });
  });

  it('runs concurrent duplicates once: the others wait and replay', async () => {
    const user = await newUser();
    let runs = 0;
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        service.run(request(user), async () => {
          runs++;
          await new Promise((r) => setTimeout(r, 300));
          return ok(runs);
        }),
      ),
    );
    expect(runs).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(results.every((r) => (r.body as { n: number }).n === 1)).toBe(true);
  });

  it('answers 409 idempotency_in_progress when the first attempt outlasts the wait', async () => {
    const user = await newUser();
    const claim = await service.begin(request(user));
    expect(claim.kind).toBe('execute');
    await expect(service.begin(request(user), 200)).rejects.toMatchObject({
      status: 409,
      code: 'idempotency_in_progress',
    });
  });

  it('releases the key after a failure so that a retry runs again', async () => {
    const user = await newUser();
    let runs = 0;
    await expect(
      service.run(request(user), async () => {
        runs++;
        throw new Error('upstream down');
      }),
    ).rejects.toThrow('upstream down');
    const failed = await service.run(request(user), async () => ({ ...ok(++runs), status: 502 }));
    expect(failed).toMatchObject({ status: 502, replayed: false });
    const retry = await service.run(request(user), async () => ok(++runs));
    expect(retry).toMatchObject({ replayed: false, body: { n: 3 } });
  });

  it('lets a retry take over a key whose holder died, and forgets expired keys', async () => {
    const user = await newUser();
    await service.begin(request(user));
    await pg.query(
      `UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE user_id = $1`,
      [user],
    );
    expect((await service.begin(request(user))).kind).toBe('execute');
    // A dead holder's key is not taken over by a *different* request.
    await pg.query(
      `UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE user_id = $1`,
      [user],
    );
    await expect(service.begin(request(user, { other: true }), 0)).rejects.toMatchObject({
      code: 'idempotency_conflict',
    });
    await service.complete({ userId: user, key: 'key-1' }, ok(7));
    await pg.query(
      `UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE user_id = $1`,
      [user],
    );
    expect((await service.begin(request(user, { other: true }))).kind).toBe('execute');
    await pg.query(
      `UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE user_id = $1`,
      [user],
    );
    expect(await service.deleteExpired()).toBeGreaterThanOrEqual(1);
  });
});
