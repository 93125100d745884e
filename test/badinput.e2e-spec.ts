import fc from 'fast-check';
import { RequestLogWriter } from '@app/database';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, writeProvidersFile } from './support/mock-upstream';
import {
  call,
  heapAfterGc,
  isEnvelope,
  ledgerProblems,
  rawJson,
  rawRequest,
  Reply,
  secretsInLogs,
  sql,
} from './faults/harness';

/**
 * Bad input over every public and admin endpoint (DESIGN §4, §8): table tests for each class of
 * bad input, and fast-check properties over bodies, ids, queries and headers. Whatever arrives,
 * the answer is a 4xx in the OpenAI envelope (or a normal answer when the input happens to be
 * valid) — never a 5xx — nothing is charged for a refused request, the process stays up and its
 * heap stays flat.
 */

/** `npm run test:faults` (SY_FAULTS=full) fuzzes ten times longer than `npm test`. */
const runs = (n: number) => (process.env.SY_FAULTS === 'full' ? n * 10 : n);
const BODY_LIMIT = 256 * 1024;
const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
const NIL_UUID = '00000000-0000-4000-8000-000000000000';

type Auth = 'key' | 'admin' | 'none';
interface Endpoint {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** `:id` is replaced by the case's id. */
  path: string;
  auth: Auth;
  /** A valid body, mutated by the properties. */
  valid?: Record<string, unknown>;
  /** No body (or JSON null) is valid here. */
  optionalBody?: boolean;
}

const chatBody = { model: 'up-gpt', messages: [{ role: 'user', content: 'hi' }] };
const ENDPOINTS: Endpoint[] = [
  { method: 'GET', path: '/v1/models', auth: 'key' },
  { method: 'POST', path: '/v1/chat/completions', auth: 'key', valid: chatBody },
  {
    method: 'POST',
    path: '/v1/images/generations',
    auth: 'key',
    valid: { model: 'up-image', prompt: 'a lighthouse', n: 1 },
  },
  {
    method: 'POST',
    path: '/v1/generations',
    auth: 'key',
    valid: { type: 'chat', request: chatBody },
  },
  { method: 'GET', path: '/v1/generations/:id', auth: 'key' },
  { method: 'DELETE', path: '/v1/generations/:id', auth: 'key' },
  { method: 'GET', path: '/v1/credits', auth: 'key' },
  { method: 'GET', path: '/v1/credits/ledger', auth: 'key' },
  {
    method: 'POST',
    path: '/auth/token',
    auth: 'none',
    valid: { username: 'nobody', password: 'x' },
  },
  { method: 'GET', path: '/admin/stats', auth: 'admin' },
  { method: 'GET', path: '/admin/users', auth: 'admin' },
  { method: 'GET', path: '/admin/users/:id', auth: 'admin' },
  {
    method: 'POST',
    path: '/admin/users',
    auth: 'admin',
    valid: { username: 'fuzz-user', email: 'f@example.com', base_quota: 1 },
  },
  { method: 'GET', path: '/admin/keys', auth: 'admin' },
  { method: 'GET', path: '/admin/keys/:id', auth: 'admin' },
  { method: 'POST', path: '/admin/keys', auth: 'admin', valid: { user_id: NIL_UUID, name: 'k' } },
  { method: 'PATCH', path: '/admin/keys/:id', auth: 'admin', valid: { name: 'renamed' } },
  {
    method: 'POST',
    path: '/admin/keys/:id/rotate',
    auth: 'admin',
    optionalBody: true,
    valid: { grace_period_seconds: 1 },
  },
  { method: 'DELETE', path: '/admin/keys/:id', auth: 'admin' },
  { method: 'GET', path: '/admin/audit', auth: 'admin' },
  { method: 'GET', path: '/admin/sessions', auth: 'admin' },
  { method: 'GET', path: '/admin/sessions/:id', auth: 'admin' },
  {
    method: 'POST',
    path: '/admin/sessions',
    auth: 'admin',
    valid: { cookie_text: 'sso=fuzz-session-credential', provider: 'pool', metadata: { a: 1 } },
  },
  { method: 'PATCH', path: '/admin/sessions/:id/activate', auth: 'admin' },
  { method: 'PATCH', path: '/admin/sessions/:id/quarantine', auth: 'admin' },
  { method: 'DELETE', path: '/admin/sessions/:id', auth: 'admin' },
  { method: 'GET', path: '/admin/providers', auth: 'admin' },
  { method: 'PATCH', path: '/admin/providers/:id', auth: 'admin', valid: { priority: 7 } },
  { method: 'GET', path: '/admin/circuit-breakers', auth: 'admin' },
  { method: 'GET', path: '/admin/circuit-breakers/:id', auth: 'admin' },
  { method: 'POST', path: '/admin/circuit-breakers/:id/reset', auth: 'admin' },
  {
    method: 'POST',
    path: '/admin/circuit-breakers/:id/force-open',
    auth: 'admin',
    optionalBody: true,
    valid: { durationMs: 1 },
  },
  {
    method: 'POST',
    path: '/admin/credits/grant',
    auth: 'admin',
    valid: { user_id: NIL_UUID, amount: 1, description: 'x', idempotency_key: 'fuzz' },
  },
  {
    method: 'POST',
    path: '/admin/credits/adjust',
    auth: 'admin',
    valid: { user_id: NIL_UUID, amount: -1, description: 'x' },
  },
  {
    method: 'POST',
    path: '/admin/credits/recalculate',
    auth: 'admin',
    optionalBody: true,
    valid: { user_id: NIL_UUID },
  },
  { method: 'GET', path: '/admin/credits/audit', auth: 'admin' },
  { method: 'POST', path: '/admin/credits/refund', auth: 'admin', valid: { request_id: 'nope' } },
  {
    method: 'POST',
    path: '/admin/credits/cycle-reset',
    auth: 'admin',
    optionalBody: true,
    valid: { user_id: NIL_UUID },
  },
  { method: 'GET', path: '/admin/credits/users/:id', auth: 'admin' },
  { method: 'GET', path: '/admin/credits/users/:id/ledger', auth: 'admin' },
  { method: 'GET', path: '/admin/pricing', auth: 'admin' },
  {
    method: 'PUT',
    path: '/admin/pricing/:id',
    auth: 'admin',
    optionalBody: true,
    valid: { per_request: 1 },
  },
  { method: 'DELETE', path: '/admin/pricing/:id', auth: 'admin' },
  { method: 'GET', path: '/admin/jobs', auth: 'admin' },
  { method: 'GET', path: '/admin/jobs/:id', auth: 'admin' },
  {
    method: 'POST',
    path: '/admin/jobs/clear-stuck',
    auth: 'admin',
    optionalBody: true,
    valid: { older_than_minutes: 525600 },
  },
  { method: 'GET', path: '/admin/cache/stats', auth: 'admin' },
  { method: 'DELETE', path: '/admin/cache', auth: 'admin' },
  { method: 'GET', path: '/admin/ui/:id', auth: 'none' },
];

const BODY_ENDPOINTS = ENDPOINTS.filter((e) => e.valid);
const ID_ENDPOINTS = ENDPOINTS.filter((e) => e.path.includes(':id'));
const QUERY_ENDPOINTS = [
  '/v1/credits/ledger',
  '/admin/users',
  '/admin/keys',
  '/admin/audit',
  '/admin/jobs',
  '/admin/cache',
];

/** Raw bodies that are not valid JSON, or that no endpoint accepts. */
const deepArray = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
const MALFORMED: [string, string][] = [
  ['truncated object', '{"model": "up-gpt", "messages": ['],
  ['bare words', '{model: up-gpt}'],
  ['single quotes', "{'a': 1}"],
  ['trailing garbage', '{"a":1}}'],
  ['trailing comma', '{"a":1,}'],
  ['NaN literal', '{"a": NaN}'],
  ['lone value', 'nul'],
  ['control character', '{"a":"\u0001"}x'],
  ['proto pollution', '{"__proto__": {"admin": true}, "a": 1}'],
  ['constructor pollution', '{"constructor": {"prototype": {"admin": true}}}'],
  ['empty', ''],
  ['whitespace', '   \n  '],
];
const NOT_AN_OBJECT: [string, string][] = [
  ['array', '[]'],
  ['array of objects', '[{"a":1}]'],
  ['string', '"hello"'],
  ['number', '42'],
  ['null', 'null'],
  ['true', 'true'],
];
const DEEP: [string, string][] = [
  ['deep array (100k)', deepArray(100_000)],
  ['deep object (20k)', deepObject(20_000)],
];

/** Ids for `:id`: malformed, traversal, encoded control characters, absurd length, unknown. */
const BAD_IDS = [
  'not-a-uuid',
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '..%5C..%5Cwindows',
  '%2e%2e%2f%2e%2e%2f',
  '%00',
  '%0d%0aSet-Cookie:%20x=1',
  "1'%20OR%20'1'%3D'1",
  '%E2%80%AE%F0%9F%92%A9',
  '%FF%FE',
  'a'.repeat(5000),
  NIL_UUID.toUpperCase().replace('4000', 'ZZZZ'),
  NIL_UUID,
  `${NIL_UUID}extra`,
  '-1',
  '1e999',
];

describe('bad input: every endpoint answers a 4xx envelope, never a 5xx', () => {
  let gw: TestGateway;
  let up: MockUpstream;
  let consumer: TestConsumer;
  let admin: string;
  const refused: string[] = []; // request ids of 4xx answers: none may be charged
  let tried = 0;
  let fiveHundreds: string[] = [];

  const headersFor = (auth: Auth): Record<string, string> =>
    auth === 'key'
      ? { authorization: `Bearer ${consumer.key}`, 'x-forwarded-for': '192.0.2.10' }
      : auth === 'admin'
        ? { authorization: `Bearer ${admin}` }
        : { 'x-forwarded-for': '192.0.2.11' };

  /** Records the answer and checks the invariant every answer must hold. */
  function check(label: string, res: Reply | { status: number; json: unknown; id?: string }): void {
    tried++;
    if (res.status >= 500) fiveHundreds.push(`${label}: ${res.status} ${JSON.stringify(res.json)}`);
    if (res.status >= 400 && !isEnvelope(res.json))
      fiveHundreds.push(`${label}: ${res.status} without the error envelope`);
    const id = 'headers' in res ? res.headers.get('x-request-id') : undefined;
    if (res.status >= 400 && id) refused.push(id);
  }

  async function send(
    endpoint: Endpoint,
    options: { id?: string; body?: unknown; headers?: Record<string, string>; query?: string } = {},
  ): Promise<Reply> {
    const path =
      endpoint.path.replace(':id', options.id ?? NIL_UUID) +
      (options.query ? `?${options.query}` : '');
    const res = await call(gw.url, path, {
      method: endpoint.method,
      headers: { ...headersFor(endpoint.auth), ...options.headers },
      body: options.body,
    });
    check(`${endpoint.method} ${path.slice(0, 120)}`, res);
    return res;
  }

  const expectNoFailures = () => {
    const found = fiveHundreds;
    fiveHundreds = [];
    expect(found).toEqual([]);
  };

  beforeAll(async () => {
    up = await startMockUpstream('badinput-upstream');
    const file = writeProvidersFile(`
providers:
  - name: up
    kind: openai
    base_url: ${up.url}
    priority: 1
    models: [up-gpt, up-image]
    timeout_ms: 3000
  - name: spare
    kind: openai
    base_url: ${up.url}
    models: [spare-gpt]
  - name: pool
    kind: openai
    base_url: ${up.url}
    session_auth: cookie
    models: [pool-gpt]
  - name: mock
    kind: mock
    priority: 5
    models: [mock-gpt]
pricing:
  - { model: up-gpt, per_request: 3 }
  - { model: up-image, per_image: 10 }
`);
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        BODY_LIMIT_BYTES: String(BODY_LIMIT),
        HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        RATE_LIMIT_PER_MINUTE: '1000000',
        RATE_LIMIT_PER_HOUR: '1000000',
        LOGIN_RATE_LIMIT_PER_MINUTE: '1000000',
        LOGIN_MAX_FAILURES_PER_USER: '1000000',
        LOGIN_MAX_FAILURES_PER_IP: '1000000',
        CB_FAILURE_THRESHOLD: '1000000',
        JOB_WORKER_ENABLED: 'false',
      },
    });
    consumer = await newConsumer(gw, { credits: 1_000_000 });
    admin = (await adminToken(gw)).token;
  });

  afterAll(async () => {
    await gw?.close();
    await up?.stop();
  });

  it('a valid request of each body endpoint works (the baseline the mutations start from)', async () => {
    const chat = await send(ENDPOINTS[1], { body: chatBody });
    expect(chat.status).toBe(200);
    const image = await send(ENDPOINTS[2], { body: BODY_ENDPOINTS[1].valid });
    expect(image.status).toBe(200);
  });

  it('refuses malformed JSON, non-object bodies and deep nesting with 400 on every body endpoint', async () => {
    for (const endpoint of BODY_ENDPOINTS) {
      for (const [label, raw] of [...MALFORMED, ...NOT_AN_OBJECT, ...DEEP]) {
        const res = await send(endpoint, { body: raw });
        const emptyIsValid =
          endpoint.optionalBody && ['null', 'empty', 'whitespace'].includes(label);
        const ok = emptyIsValid ? res.status < 500 : res.status >= 400 && res.status < 500;
        expect([endpoint.path, label, ok]).toEqual([endpoint.path, label, true]);
      }
      const deep = { ...endpoint.valid, extra_nested: JSON.parse(deepObject(200)) };
      const res = await send(endpoint, { body: deep });
      expect(res.status).toBe(400);
    }
    expectNoFailures();
  });

  it('refuses nesting hidden inside fields that accept any object', async () => {
    // Built as text: JSON.stringify itself overflows the stack on values this deep.
    const withDeep = (body: unknown) => JSON.stringify(body).replace('"DEEP"', deepObject(5000));
    for (const [endpoint, body] of [
      [ENDPOINTS[1], { ...chatBody, tool_choice: 'DEEP' }],
      [
        ENDPOINTS[1],
        { ...chatBody, response_format: { type: 'json_schema', json_schema: 'DEEP' } },
      ],
      [ENDPOINTS[1], { ...chatBody, messages: [{ role: 'user', content: 'x', extra: 'DEEP' }] }],
      [ENDPOINTS[3], { type: 'chat', request: { ...chatBody, metadata: 'DEEP' } }],
      [ENDPOINTS[2], { model: 'up-image', prompt: 'DEEP' }],
    ] as const) {
      const res = await send(endpoint, { body: withDeep(body) });
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe('body_too_deep');
    }
    expectNoFailures();
  });

  it('answers 413 for a body over the limit, and 415/400 for other content types', async () => {
    const big = JSON.stringify({
      ...chatBody,
      messages: [{ role: 'user', content: 'x'.repeat(BODY_LIMIT) }],
    });
    for (const endpoint of BODY_ENDPOINTS) {
      const res = await send(endpoint, { body: big });
      expect(res.status).toBe(413);
      expect(res.json.error.code).toBe('payload_too_large');
    }
    for (const type of [
      'text/plain',
      'application/xml',
      'multipart/form-data; boundary=x',
      'application/json; charset=latin1',
      'application/x-www-form-urlencoded',
    ]) {
      for (const endpoint of BODY_ENDPOINTS) {
        const res = await send(endpoint, { body: 'a=1&b=2', headers: { 'content-type': type } });
        expect([type, endpoint.path, res.status >= 400 && res.status < 500]).toEqual([
          type,
          endpoint.path,
          true,
        ]);
      }
    }
    expectNoFailures();
  });

  it('refuses wrong types, huge values, unknown fields and out-of-range numbers field by field', async () => {
    const replacements: unknown[] = [
      null,
      true,
      -1,
      0,
      1.5,
      -1e308,
      1e308,
      9007199254740993,
      '',
      'x'.repeat(100_000),
      '\u0000nul\u0000',
      '\ud800 lone surrogate',
      '\u202e\u200b\ufeff',
      Array.from({ length: 20_000 }, () => 1),
      Array.from({ length: 2_000 }, () => ({ role: 'user', content: 'x' })),
      { nested: { deeper: ['x'] } },
      [],
      {},
    ];
    for (const endpoint of BODY_ENDPOINTS) {
      const valid = endpoint.valid!;
      for (const field of Object.keys(valid)) {
        for (const value of replacements) {
          await send(endpoint, { body: { ...valid, [field]: value } });
        }
      }
      const unknown = await send(endpoint, { body: { ...valid, surprise_field: 1 } });
      if (endpoint.path !== '/auth/token') expect(unknown.status).toBeGreaterThanOrEqual(400);
    }
    expectNoFailures();
  });

  it('stores nothing it cannot store: NUL characters and lone surrogates in stored strings', async () => {
    const cases: [Endpoint, Record<string, unknown>][] = [
      [
        ENDPOINTS.find((e) => e.path === '/admin/users' && e.method === 'POST')!,
        { username: 'nul\u0000user' },
      ],
      [
        ENDPOINTS.find((e) => e.path === '/admin/users' && e.method === 'POST')!,
        { username: 'surrogate\ud800', subscription_tier: '\udfff' },
      ],
      [
        ENDPOINTS.find((e) => e.path === '/admin/sessions' && e.method === 'POST')!,
        { cookie_text: 'sso=abc', provider: 'pool', metadata: { note: 'nul\u0000' } },
      ],
      [
        ENDPOINTS.find((e) => e.path === '/admin/sessions' && e.method === 'POST')!,
        { cookie_text: 'sso=abcdef', provider: 'pool', metadata: { '\ud800': 1 } },
      ],
      [
        ENDPOINTS[3],
        {
          type: 'chat',
          request: { ...chatBody, messages: [{ role: 'user', content: 'nul\u0000' }] },
        },
      ],
      [
        ENDPOINTS[3],
        {
          type: 'chat',
          request: { ...chatBody, messages: [{ role: 'user', content: 'lone \ud800' }] },
        },
      ],
      [
        ENDPOINTS.find((e) => e.path === '/admin/credits/grant')!,
        { user_id: consumer.userId, amount: 1, description: 'nul\u0000' },
      ],
      [
        ENDPOINTS.find((e) => e.path === '/admin/credits/grant')!,
        { user_id: consumer.userId, amount: 1, idempotency_key: 'nul\u0000' },
      ],
      [ENDPOINTS.find((e) => e.path === '/admin/credits/refund')!, { request_id: 'nul\u0000' }],
      [
        ENDPOINTS.find((e) => e.path === '/admin/keys' && e.method === 'POST')!,
        { user_id: consumer.userId, name: 'nul\u0000' },
      ],
      [
        ENDPOINTS.find((e) => e.path === '/auth/token')!,
        { username: 'nul\u0000', password: 'x\u0000' },
      ],
    ];
    for (const [endpoint, body] of cases) {
      const res = await send(endpoint, { body });
      expect([endpoint.path, JSON.stringify(body).slice(0, 80), res.status < 500]).toEqual([
        endpoint.path,
        JSON.stringify(body).slice(0, 80),
        true,
      ]);
    }
    for (const model of ['nul%00model', '%F0%9F%92%A9', 'a'.repeat(300)]) {
      const put = ENDPOINTS.find((e) => e.method === 'PUT')!;
      await send(put, { id: model, body: { per_request: 1 } });
    }
    expectNoFailures();
  });

  it('answers 400 or 404 for malformed, traversal and unknown ids on every :id route', async () => {
    for (const endpoint of ID_ENDPOINTS) {
      for (const id of BAD_IDS) {
        const res = await send(endpoint, { id, body: endpoint.valid });
        // /admin/pricing/:model takes any model name: a price for it is a valid answer.
        const ok = endpoint.path.startsWith('/admin/pricing')
          ? res.status < 500
          : res.status >= 400 && res.status < 500;
        expect([endpoint.path, id.slice(0, 40), ok]).toEqual([
          endpoint.path,
          id.slice(0, 40),
          true,
        ]);
      }
    }
    expectNoFailures();
  });

  it('refuses bad query parameters: types, ranges, repeats, absurd cursors', async () => {
    const queries = [
      'limit=abc',
      'limit=-1',
      'limit=0',
      'limit=1e999',
      'limit=1.5',
      'limit=99999999999999999999',
      'limit=1&limit=2',
      'cursor=%00',
      'cursor=not-base64!!',
      `cursor=${'A'.repeat(10_000)}`,
      `cursor=${Buffer.from('../../etc/passwd').toString('base64url')}`,
      'cursor=a&cursor=b',
      'status=unknown',
      'status=pending&status=failed',
      'status[]=x',
      'user_id=..%2F..%2F',
      'user_id=a&user_id=b',
      'action=%00&actor=%FF',
      'model=%00',
      'model=a&model=b',
      'user_id=%00',
    ];
    for (const path of QUERY_ENDPOINTS) {
      const endpoint = ENDPOINTS.find((e) => e.path === path) ?? {
        method: 'DELETE' as const,
        path,
        auth: 'admin' as const,
      };
      for (const query of queries) {
        const res = await send(
          path === '/admin/cache' ? { ...endpoint, method: 'DELETE' } : endpoint,
          { query },
        );
        expect(res.status).toBeLessThan(500);
      }
    }
    expectNoFailures();
  });

  describe('headers', () => {
    // `connection: close` so the raw reader sees the end of each answer at once.
    const head = (lines: string[], body = '') =>
      `${lines.join('\r\n')}\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

    it('answers header abuse on the raw socket with an envelope: huge, repeated, CR/LF, smuggling', async () => {
      const key = `authorization: Bearer ${consumer.key}`;
      const cases: { label: string; request: string | Buffer; expect: number[] }[] = [
        {
          label: 'header over 16 KiB',
          request: head(['GET /v1/models HTTP/1.1', 'host: x', `x-big: ${'a'.repeat(20_000)}`]),
          expect: [431],
        },
        {
          label: 'request id over 16 KiB',
          request: head([
            'GET /v1/models HTTP/1.1',
            'host: x',
            `x-request-id: ${'a'.repeat(17_000)}`,
          ]),
          expect: [431],
        },
        {
          label: '500 repeated headers',
          request: head([
            'GET /v1/models HTTP/1.1',
            'host: x',
            ...Array.from({ length: 500 }, (_, i) => `x-api-key: k${i}`),
          ]),
          expect: [401, 431],
        },
        {
          label: 'two Authorization headers',
          request: head([
            'GET /v1/models HTTP/1.1',
            'host: x',
            key,
            'authorization: Bearer sk-sy-other',
          ]),
          expect: [200, 401],
        },
        {
          label: 'two X-API-Key headers',
          request: head([
            'GET /v1/models HTTP/1.1',
            'host: x',
            `x-api-key: ${consumer.key}`,
            'x-api-key: other',
          ]),
          expect: [401],
        },
        {
          label: 'bare CR in a header value',
          request: head(['GET /v1/models HTTP/1.1', 'host: x', `x-request-id: a\rSet-Cookie: x=1`]),
          expect: [400],
        },
        {
          label: 'bare LF in a header value',
          request: `GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-request-id: a\nSet-Cookie: x=1\r\n\r\n`,
          expect: [200, 400, 401],
        },
        {
          label: 'NUL in a header value',
          request: head(['GET /v1/models HTTP/1.1', 'host: x', 'x-request-id: a\u0000b']),
          expect: [400],
        },
        {
          label: 'space before colon',
          request: head(['GET /v1/models HTTP/1.1', 'host: x', 'authorization : Bearer x']),
          expect: [400],
        },
        {
          label: 'obsolete line folding',
          request: head([
            'GET /v1/models HTTP/1.1',
            'host: x',
            'authorization: Bearer',
            ` ${consumer.key}`,
          ]),
          expect: [400, 401],
        },
        {
          label: 'Content-Length and Transfer-Encoding (smuggling)',
          request: `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n${key}\r\ncontent-type: application/json\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`,
          expect: [400],
        },
        {
          label: 'two Content-Length values',
          request: `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n${key}\r\ncontent-type: application/json\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}x`,
          expect: [400],
        },
        {
          label: 'negative Content-Length',
          request: `POST /auth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: -5\r\n\r\n{}`,
          expect: [400],
        },
        {
          label: 'unknown method',
          request: head(['BREW /v1/models HTTP/1.1', 'host: x']),
          expect: [400, 404, 405],
        },
        {
          label: 'garbage request line',
          request: 'GET\u0000/v1/models HTTP/1.1\r\nhost: x\r\n\r\n',
          expect: [400],
        },
        {
          label: 'not HTTP at all',
          request: '\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003',
          expect: [400],
        },
        {
          label: 'HTTP/1.1 without Host',
          request: head(['GET /v1/models HTTP/1.1', key]),
          expect: [400],
        },
        {
          label: 'absolute-form target to another host',
          request: head(['GET http://169.254.169.254/latest/meta-data HTTP/1.1', 'host: x', key]),
          expect: [400, 404],
        },
        {
          label: 'invalid UTF-8 in a JSON body',
          request: (() => {
            const body = Buffer.concat([
              Buffer.from('{"model":"up-gpt","messages":[{"role":"user","content":"'),
              Buffer.from([0xff, 0xfe, 0xc3]),
              Buffer.from('"}]}'),
            ]);
            return Buffer.concat([
              Buffer.from(
                `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n${key}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`,
              ),
              body,
            ]);
          })(),
          expect: [200, 400],
        },
        {
          label: 'invalid UTF-8 in a header',
          request: Buffer.concat([
            Buffer.from('GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-api-key: '),
            Buffer.from([0xff, 0xc3, 0x28]),
            Buffer.from('\r\n\r\n'),
          ]),
          expect: [400, 401],
        },
      ];
      for (const c of cases) {
        const reply = await rawRequest(gw.url, [c.request], { timeoutMs: 5000 });
        tried++;
        expect([c.label, c.expect.includes(reply.status)]).toEqual([c.label, true]);
        if (reply.status >= 400)
          expect([c.label, isEnvelope(rawJson(reply))]).toEqual([c.label, true]);
        expect(reply.head).not.toMatch(/^set-cookie/im);
      }
    });

    it('never echoes an unsafe request id, idempotency key or conversation id', async () => {
      const res = await send(ENDPOINTS[0], { headers: { 'x-request-id': 'a'.repeat(200) } });
      expect(res.headers.get('x-request-id')).not.toBe('a'.repeat(200));
      for (const [name, value] of [
        ['idempotency-key', 'x'.repeat(300)],
        ['idempotency-key', 'tab\there'],
        ['x-conversation-id', '../../etc'],
        ['x-conversation-id', 'x'.repeat(200)],
        ['x-cache', 'x'.repeat(5000)],
        ['cache-control', 'no-cache, '.repeat(500)],
      ]) {
        const r = await send(ENDPOINTS[1], { body: chatBody, headers: { [name]: value } });
        expect([name, r.status < 500]).toEqual([name, true]);
      }
      expectNoFailures();
    });

    it('answers slow clients with 408 once the header or body timeout passes, serving others meanwhile', async () => {
      const started = Date.now();
      const silent = rawRequest(gw.url, [], { timeoutMs: 10_000 }).catch(() => null);
      const dripHeaders = rawRequest(
        gw.url,
        'GET /v1/models HTTP/1.1\r\nhost: x\r\nx-slow: '.split('').concat(['a'.repeat(10)]),
        { gapMs: 150, timeoutMs: 10_000 },
      );
      const dripBody = rawRequest(
        gw.url,
        [
          `POST /auth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{"username":`,
          ...Array.from({ length: 60 }, () => ' '),
        ],
        { gapMs: 100, timeoutMs: 10_000 },
      );
      // Meanwhile everyone else is served.
      const ok = await call(gw.url, '/health/live');
      expect(ok.status).toBe(200);
      const [a, b, c] = await Promise.all([silent, dripHeaders, dripBody]);
      for (const reply of [b, c]) {
        expect(reply.status).toBe(408);
        expect(isEnvelope(rawJson(reply))).toBe(true);
      }
      // A connection that never says anything is closed (with or without a 408).
      expect(a === null || a.status === 408 || a.closedWithoutAnswer).toBe(true);
      expect(Date.now() - started).toBeLessThan(REQUEST_TIMEOUT_MS + 4000);
      tried += 3;
    });
  });

  describe('properties (fast-check)', () => {
    const jsonish = fc.jsonValue({ maxDepth: 4 });

    it('random bodies and mutated valid bodies: never a 5xx', async () => {
      for (const endpoint of BODY_ENDPOINTS) {
        const fields = Object.keys(endpoint.valid!);
        await fc.assert(
          fc.asyncProperty(
            fc.oneof(
              jsonish,
              fc
                .record({ field: fc.constantFrom(...fields), value: jsonish })
                .map(({ field, value }) => ({
                  ...endpoint.valid,
                  [field]: value,
                })),
              fc
                .record({ key: fc.string({ maxLength: 20 }), value: jsonish })
                .map(({ key, value }) => ({
                  ...endpoint.valid,
                  [key]: value,
                })),
            ),
            async (body) => {
              const res = await send(endpoint, {
                body: body === undefined ? 'null' : JSON.stringify(body),
              });
              return res.status < 500 && (res.status < 400 || isEnvelope(res.json));
            },
          ),
          { numRuns: runs(15), seed: 42 },
        );
      }
      expectNoFailures();
    });

    it('random ids and query strings: never a 5xx', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...ID_ENDPOINTS),
          fc.string({ minLength: 1, maxLength: 80, unit: 'binary' }),
          async (endpoint, id) => {
            const res = await send(endpoint, { id: encodeURIComponent(id), body: endpoint.valid });
            return res.status < 500 && isEnvelope(res.json) === res.status >= 400;
          },
        ),
        { numRuns: runs(120), seed: 7 },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...QUERY_ENDPOINTS.filter((p) => p !== '/admin/cache')),
          fc.dictionary(
            fc.constantFrom('limit', 'cursor', 'status', 'user_id', 'action', 'actor'),
            fc.string({ maxLength: 40, unit: 'binary' }),
          ),
          async (path, query) => {
            const endpoint = ENDPOINTS.find((e) => e.path === path)!;
            const res = await send(endpoint, { query: new URLSearchParams(query).toString() });
            return res.status < 500;
          },
        ),
        { numRuns: runs(100), seed: 11 },
      );
      expectNoFailures();
    });

    it('random credentials and header values: never a 5xx', async () => {
      const printable = fc.string({
        maxLength: 300,
        unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(
            'authorization',
            'x-api-key',
            'idempotency-key',
            'x-conversation-id',
            'x-request-id',
            'x-forwarded-for',
            'cache-control',
            'content-type',
          ),
          printable,
          fc.constantFrom(ENDPOINTS[0], ENDPOINTS[1], ENDPOINTS[3], ENDPOINTS[10]),
          async (name, value, endpoint) => {
            const res = await send(endpoint, { headers: { [name]: value }, body: endpoint.valid });
            return res.status < 500;
          },
        ),
        { numRuns: runs(120), seed: 3 },
      );
      expectNoFailures();
    });
  });

  it('keeps the heap flat across repeated rounds of bad input', async () => {
    const round = async () => {
      for (let i = 0; i < 3; i++) {
        for (const endpoint of BODY_ENDPOINTS) {
          await send(endpoint, { body: MALFORMED[i][1] });
          await send(endpoint, { body: DEEP[i % 2][1] });
          await send(endpoint, { body: { ...endpoint.valid, extra: 'x'.repeat(50_000) } });
        }
      }
    };
    await round();
    const before = heapAfterGc();
    await round();
    await round();
    const after = heapAfterGc();
    process.stdout.write(
      `[badinput] heap growth over two rounds: ${((after - before) / 1e6).toFixed(1)} MB\n`,
    );
    // Two rounds push ~3 MB of bodies each; a leak of even one body per request would exceed this.
    expect(after - before).toBeLessThan(16 * 1024 * 1024);
    expectNoFailures();
  });

  it('charged nothing for any refused request, kept the ledger whole, and stayed up', async () => {
    expect(tried).toBeGreaterThan(1000);
    expect((await call(gw.url, '/health/live')).status).toBe(200);
    const charged = await sql<{ request_id: string; net: string }>(
      gw.databaseUrl,
      `SELECT request_id, SUM(amount)::text AS net FROM credit_ledger
        WHERE request_id = ANY($1) GROUP BY request_id HAVING SUM(amount) <> 0`,
      [refused],
    );
    expect(charged).toEqual([]);
    expect(await ledgerProblems(gw.databaseUrl)).toEqual([]);
    // Every row went to request_logs: no bad value (a NUL in a model name…) held back the buffer.
    const requestLogs = gw.gateway.app.get(RequestLogWriter);
    await requestLogs.flush();
    expect(requestLogs.pending).toBe(0);
    expect(gw.logs.filter((l) => l.includes('"unhandled error"'))).toEqual([]);
    // Keys, tokens and credentials went into headers and bodies of all kinds: none in the logs.
    expect(secretsInLogs(gw.logs, [consumer.key, admin, 'sso=fuzz-session-credential'])).toEqual(
      [],
    );
    process.stdout.write(
      `[badinput] ${tried} bad inputs tried, ${refused.length} refused with 4xx\n`,
    );
  });
});
