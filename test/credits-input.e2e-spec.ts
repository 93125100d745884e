import { randomUUID } from 'node:crypto';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { call } from './support/api-call';
import { writeProvidersFile } from './support/mock-upstream';

/**
 * Input the credits API and the billable routes used to accept and then misread: prices with
 * more decimals than the ledger stores, admin idempotency keys in the gateway's own key
 * namespace, an empty Idempotency-Key header, and unknown DELETE /admin/cache parameters.
 */

const CHAT_MODEL = 'gpt-4o-mini';
const IMAGE_MODEL = 'dall-e-3';

const providersFile = () =>
  writeProvidersFile(
    [
      'providers:',
      `  - { name: mock, kind: mock, models: [${CHAT_MODEL}, ${IMAGE_MODEL}] }`,
      'pricing:',
      `  - { model: ${CHAT_MODEL}, per_request: 1, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 2 }`,
      `  - { model: ${IMAGE_MODEL}, per_image: 40 }`,
      '',
    ].join('\n'),
  );

const chatBody = (content = 'hello', extra: Record<string, unknown> = {}) => ({
  model: CHAT_MODEL,
  messages: [{ role: 'user', content }],
  ...extra,
});

describe('credits input', () => {
  let gw: TestGateway;
  let admin: string;

  beforeAll(async () => {
    gw = await startGateway({ env: { PROVIDERS_FILE: providersFile() } });
    admin = (await adminToken(gw)).token;
  });
  afterAll(async () => {
    await gw.close();
  });

  const balanceOf = async (c: TestConsumer): Promise<number> =>
    (await call(gw, 'GET', '/v1/credits', c.key)).body.balance;

  describe('PUT /admin/pricing/:model', () => {
    const FIELDS = [
      'per_request',
      'per_1k_prompt_tokens',
      'per_1k_completion_tokens',
      'per_image',
    ] as const;

    it.each(FIELDS)(
      'refuses a %s with more than 6 decimals instead of storing 0',
      async (field) => {
        const model = `decimals-${field}`;
        const res = await call(gw, 'PUT', `/admin/pricing/${model}`, admin, { [field]: 0.0000001 });
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({
          type: 'invalid_request_error',
          param: field,
          message: expect.stringContaining('at most 6 decimal places'),
        });
        const list = await call(gw, 'GET', '/admin/pricing', admin);
        expect(list.body.data.map((p: { model: string }) => p.model)).not.toContain(model);
      },
    );

    it('refuses a per-size image price with more than 6 decimals, naming the size', async () => {
      const res = await call(gw, 'PUT', '/admin/pricing/decimals-by-size', admin, {
        per_image: 1,
        per_image_by_size: { '1024x1024': 2.0000001 },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.param).toBe('per_image_by_size.1024x1024');
    });

    it('says what is wrong with a price: its type, or its range', async () => {
      const cases: [unknown, string][] = [
        ['1', 'expected a number'],
        [1e12 + 1, 'must be at most 1000000000000'],
        [-1, 'must be at least 0'],
      ];
      for (const [value, message] of cases) {
        const res = await call(gw, 'PUT', '/admin/pricing/price-messages', admin, {
          per_image: value,
        });
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({
          param: 'per_image',
          message: expect.stringContaining(message),
        });
      }
    });

    it('keeps a price with exactly 6 decimals exact', async () => {
      const res = await call(gw, 'PUT', '/admin/pricing/decimals-six', admin, {
        per_request: 0.000001,
        per_1k_prompt_tokens: 123456.123456,
        per_image_by_size: { '1024x1024': 0.000002 },
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        per_request: 0.000001,
        per_1k_prompt_tokens: 123456.123456,
        per_image_by_size: { '1024x1024': 0.000002 },
      });
    });
  });

  describe('admin grant and adjust idempotency keys', () => {
    /** A consumer whose ledger holds every kind of key the gateway writes for a request. */
    let c: TestConsumer;
    let closeKey: string;

    beforeAll(async () => {
      c = await newConsumer(gw, { credits: 1000 });
      expect((await call(gw, 'POST', '/v1/chat/completions', c.key, chatBody())).status).toBe(200);
      const ledger = await call(gw, 'GET', '/v1/credits/ledger', c.key);
      closeKey = ledger.body.data.find(
        (e: { event_type: string }) => e.event_type === 'settle',
      ).idempotency_key;
      expect(closeKey).toMatch(/^close:/);
    });

    const reserved = () => [
      'initial-grant',
      'bootstrap-grant',
      closeKey,
      'close:anything',
      'reserve:job:0197a0f0-0000-7000-8000-000000000000',
      'reserve:x',
      'cycle_reset:2026-07-01T00:00:00.000000Z',
    ];

    it("refuses a grant keyed like the gateway's own ledger rows, and grants nothing", async () => {
      for (const key of reserved()) {
        const res = await call(gw, 'POST', '/admin/credits/grant', admin, {
          user_id: c.userId,
          amount: 100_000,
          idempotency_key: key,
        });
        expect({ key, status: res.status }).toEqual({ key, status: 400 });
        expect(res.body.error).toMatchObject({
          type: 'invalid_request_error',
          code: 'invalid_idempotency_key',
          param: 'idempotency_key',
        });
      }
      expect(await balanceOf(c)).toBeLessThan(1000);
    });

    it("refuses an adjustment keyed like the gateway's own ledger rows", async () => {
      const before = await balanceOf(c);
      for (const key of reserved()) {
        for (const amount of [5, -5]) {
          const res = await call(gw, 'POST', '/admin/credits/adjust', admin, {
            user_id: c.userId,
            amount,
            description: 'fix',
            idempotency_key: key,
          });
          expect({ key, amount, status: res.status }).toEqual({ key, amount, status: 400 });
          expect(res.body.error).toMatchObject({
            code: 'invalid_idempotency_key',
            param: 'idempotency_key',
          });
        }
      }
      expect(await balanceOf(c)).toBe(before);
    });

    it('still replays an ordinary key, and names the body field in a conflict', async () => {
      const key = `grant-${randomUUID()}`;
      const grant = (amount: number) =>
        call(gw, 'POST', '/admin/credits/grant', admin, {
          user_id: c.userId,
          amount,
          idempotency_key: key,
        });
      expect((await grant(7)).status).toBe(201);
      const replay = await grant(7);
      expect(replay.status).toBe(200);
      expect(replay.body).toMatchObject({ replayed: true, amount: 7, idempotency_key: key });
      const conflict = await grant(8);
      expect(conflict.status).toBe(409);
      expect(conflict.body.error).toMatchObject({
        code: 'idempotency_conflict',
        param: 'idempotency_key',
      });

      const adjustKey = `adjust-${randomUUID()}`;
      const adjust = (amount: number) =>
        call(gw, 'POST', '/admin/credits/adjust', admin, {
          user_id: c.userId,
          amount,
          description: 'fix',
          idempotency_key: adjustKey,
        });
      expect((await adjust(3)).status).toBe(201);
      const adjustConflict = await adjust(4);
      expect(adjustConflict.status).toBe(409);
      expect(adjustConflict.body.error.param).toBe('idempotency_key');
    });
  });

  describe('an empty Idempotency-Key header', () => {
    const routes: [string, string, unknown][] = [
      ['chat', '/v1/chat/completions', chatBody('empty key')],
      ['images', '/v1/images/generations', { model: IMAGE_MODEL, prompt: 'a lighthouse', n: 1 }],
      [
        'jobs',
        '/v1/generations',
        {
          type: 'chat',
          request: { model: CHAT_MODEL, messages: [{ role: 'user', content: 'x' }] },
        },
      ],
    ];

    it.each(routes)(
      'is a 400 invalid_idempotency_key on %s (%s) and charges nothing',
      async (_name, route, body) => {
        const c = await newConsumer(gw, { credits: 1000, scopes: ['chat', 'images', 'jobs'] });
        for (let attempt = 0; attempt < 2; attempt++) {
          const res = await call(gw, 'POST', route, c.key, body, { 'idempotency-key': '' });
          expect(res.status).toBe(400);
          expect(res.body.error).toMatchObject({
            type: 'invalid_request_error',
            code: 'invalid_idempotency_key',
            param: 'Idempotency-Key',
          });
        }
        expect(await balanceOf(c)).toBe(1000);
        const ledger = await call(gw, 'GET', '/v1/credits/ledger', c.key);
        expect(ledger.body.data.map((e: { event_type: string }) => e.event_type)).toEqual([
          'grant',
        ]);
      },
    );
  });

  describe('DELETE /admin/cache', () => {
    let c: TestConsumer;
    const cachedChat = () =>
      call(gw, 'POST', '/v1/chat/completions', c.key, chatBody('cache me', { temperature: 0 }));

    beforeAll(async () => {
      c = await newConsumer(gw, { credits: 1000 });
    });
    // Each case starts with the entry cached, so one wrongly cleared cache fails only its case.
    beforeEach(async () => {
      await cachedChat();
      expect((await cachedChat()).headers.get('x-cache')).toBe('hit');
    });

    it.each([
      ['userid', `?userid=${randomUUID()}`],
      ['limit', '?limit=abc'],
      ['user_id', '?user_id='],
      ['user_id', '?user_id=not-a-uuid'],
      ['user_id', `?user_id=${randomUUID()}&user_id=${randomUUID()}`],
      ['model', '?model='],
      ['model', `?model=${CHAT_MODEL}&model=other`],
      ['foo', `?model=${CHAT_MODEL}&foo=1`],
    ])('refuses a bad %s parameter (%s) and clears nothing', async (param, query) => {
      const res = await call(gw, 'DELETE', `/admin/cache${query}`, admin);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ type: 'invalid_request_error', param });
      expect((await cachedChat()).headers.get('x-cache')).toBe('hit');
    });

    it('still clears by user_id', async () => {
      const res = await call(gw, 'DELETE', `/admin/cache?user_id=${c.userId}`, admin);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ deleted: 1, user_id: c.userId, model: null });
      expect((await cachedChat()).headers.get('x-cache')).toBe('miss');
    });
  });
});
