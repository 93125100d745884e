import { Client } from 'pg';
import { estimateTokens, messagesText } from '@app/generation';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway, uniqueRedisPrefix } from './support/gateway';
import { MockUpstream, startMockUpstream, writeProvidersFile } from './support/mock-upstream';

/**
 * Credits in the generation pipeline, over HTTP against a real upstream server: reserve before
 * the upstream call (402 without calling it), settle to usage, refund on failure, partial
 * billing of cut streams, Idempotency-Key, and the edge of a balance across two replicas.
 */

interface Reply {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
  headers: Headers;
}

async function post(
  gw: TestGateway,
  route: string,
  key: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const res = await fetch(`${gw.url}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // an SSE body
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: 'user', content: 'Say something nice about ledgers.' }],
  ...extra,
});

async function waitFor(predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metric(gw: TestGateway, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(labels ? `${name}{${labels}}` : `${name} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('credits in the generation pipeline', () => {
  let up: MockUpstream;
  let a: TestGateway;
  let b: TestGateway;
  /** A third replica with CREDIT_SETTLE_AFTER_RESPONSE=true. */
  let lateSettle: TestGateway;
  let pg: Client;
  let admin: string;

  beforeAll(async () => {
    up = await startMockUpstream('billing-upstream');
    const file = writeProvidersFile(`
providers:
  - name: up
    kind: openai
    base_url: ${up.url}
    priority: 1
    models: [flat-gpt, token-gpt, free-gpt, paid-image]
    timeout_ms: 700
pricing:
  # \${VAR} works in prices too: the pricing comes from the generation module's file loader.
  - { model: flat-gpt, per_request: "\${SY_TEST_FLAT_PRICE}" }
  - { model: token-gpt, per_1k_prompt_tokens: 1000, per_1k_completion_tokens: 1000 }
  - { model: paid-image, per_image: 40, per_image_by_size: { "1792x1024": 80 } }
`);
    const env = {
      PROVIDERS_FILE: file,
      SY_TEST_FLAT_PRICE: '10',
      CB_FAILURE_THRESHOLD: '100000',
      UPSTREAM_RETRY_BACKOFF_MS: '10',
      REDIS_KEY_PREFIX: uniqueRedisPrefix(),
    };
    a = await startGateway({ env });
    b = await startGateway({ env, databaseUrl: a.databaseUrl });
    lateSettle = await startGateway({
      env: { ...env, CREDIT_SETTLE_AFTER_RESPONSE: 'true' },
      databaseUrl: a.databaseUrl,
    });
    pg = new Client({ connectionString: a.databaseUrl });
    await pg.connect();
    admin = (await adminToken(a)).token;
  });

  afterAll(async () => {
    await pg?.end();
    await lateSettle?.close();
    await b?.close();
    await a?.close();
    await up?.stop();
  });

  beforeEach(() => {
    up.reset();
  });

  const ledger = async (userId: string) =>
    (
      await pg.query(
        `SELECT event_type, amount::int, balance_after::int FROM credit_ledger
         WHERE user_id = $1 ORDER BY created_at, id`,
        [userId],
      )
    ).rows as { event_type: string; amount: number; balance_after: number }[];
  const balance = async (userId: string) =>
    Number(
      (await pg.query(`SELECT balance FROM user_credits WHERE user_id = $1`, [userId])).rows[0]
        .balance,
    );
  /** Net credits a user was charged after their initial grant. */
  const charged = async (c: TestConsumer, initial: number) => initial - (await balance(c.userId));

  it('answers 402 insufficient_credits before any upstream call', async () => {
    const c = await newConsumer(a, { credits: 5 });
    const before = await metric(
      a,
      'gateway_credit_failures_total',
      'reason="insufficient_credits"',
    );
    const res = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'));
    expect(res.status).toBe(402);
    expect(res.body.error).toMatchObject({
      type: 'insufficient_credits',
      code: 'insufficient_credits',
      param: null,
    });
    expect(up.count).toBe(0);
    expect(await ledger(c.userId)).toHaveLength(1);
    expect(await metric(a, 'gateway_credit_failures_total', 'reason="insufficient_credits"')).toBe(
      before + 1,
    );
    const images = await post(a, '/v1/images/generations', c.key, {
      model: 'paid-image',
      prompt: 'a ledger',
    });
    expect(images.status).toBe(402);
    expect(up.count).toBe(0);
  });

  it('lets exactly k of N parallel requests through across two replicas when the balance covers k', async () => {
    const c = await newConsumer(a, { credits: 50 });
    up.always({ mode: 'ok', delayMs: 150 });
    const replies = await Promise.all(
      Array.from({ length: 14 }, (_, i) =>
        post(i % 2 === 0 ? a : b, '/v1/chat/completions', c.key, chat('flat-gpt')),
      ),
    );
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    expect(statuses.filter((s) => s === 402)).toHaveLength(9);
    expect(up.count).toBe(5);
    expect(await balance(c.userId)).toBe(0);
    const rows = await ledger(c.userId);
    expect(rows.reduce((sum, r) => sum + r.amount, 0)).toBe(0);
    expect(rows.filter((r) => r.event_type === 'debit')).toHaveLength(5);
  });

  it('settles to the usage the upstream reports and says what is left in x-credits-remaining', async () => {
    const c = await newConsumer(a, { credits: 10_000 });
    up.always({
      mode: 'ok',
      usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
    });
    const spentBefore = await metric(a, 'gateway_credits_spent_total');
    const res = await post(
      a,
      '/v1/chat/completions',
      c.key,
      chat('token-gpt', { max_tokens: 500 }),
    );
    expect(res.status).toBe(200);
    expect(await charged(c, 10_000)).toBe(18);
    expect(res.headers.get('x-credits-remaining')).toBe(String(10_000 - 18));
    const rows = await ledger(c.userId);
    expect(rows.map((r) => r.event_type)).toEqual(['grant', 'debit', 'settle']);
    // The hold covered the prompt estimate plus max_tokens; the settle gave the rest back.
    expect(-rows[1].amount).toBeGreaterThanOrEqual(500);
    expect(rows[1].amount + rows[2].amount).toBe(-18);
    expect(await metric(a, 'gateway_credits_spent_total')).toBe(spentBefore + 18);
    // The request's log row says what it cost (written in batches, about once a second).
    const requestId = res.headers.get('x-request-id');
    await waitFor(
      async () =>
        (await pg.query(`SELECT credits FROM request_logs WHERE request_id = $1`, [requestId]))
          .rows[0]?.credits === '18',
    );
  });

  it('refunds in full when the upstream fails with 500', async () => {
    const c = await newConsumer(a, { credits: 100 });
    up.always({ mode: 'status', status: 500 });
    const res = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'));
    expect(res.status).toBe(502);
    expect(up.count).toBeGreaterThanOrEqual(1);
    expect(await balance(c.userId)).toBe(100);
    expect((await ledger(c.userId)).map((r) => r.event_type)).toEqual(['grant', 'debit', 'refund']);
  });

  it('refunds in full when the upstream times out', async () => {
    const c = await newConsumer(a, { credits: 100 });
    up.always({ mode: 'hang' });
    const res = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'));
    expect(res.status).toBe(504);
    expect(res.body.error.code).toBe('upstream_timeout');
    expect(await balance(c.userId)).toBe(100);
    expect((await ledger(c.userId)).at(-1)!.event_type).toBe('refund');
  });

  it('bills a stream cut by the upstream for the tokens delivered before the cut', async () => {
    const c = await newConsumer(a, { credits: 10_000 });
    up.always({ mode: 'cut', afterChunks: 3 });
    const body = chat('token-gpt', { stream: true, max_tokens: 400 });
    const res = await post(a, '/v1/chat/completions', c.key, body);
    expect(res.status).toBe(200);
    expect(res.text).toContain('stream_interrupted');
    const delivered = 'this stream will be cut short by the upstream'.slice(0, 15);
    const expected = estimateTokens(messagesText(body.messages)) + estimateTokens(delivered);
    await waitFor(async () => (await ledger(c.userId)).length === 3);
    expect(await charged(c, 10_000)).toBe(expected);
    expect((await ledger(c.userId)).map((r) => r.event_type)).toEqual(['grant', 'debit', 'settle']);
  });

  it('refunds a stream the upstream cut before any content', async () => {
    const c = await newConsumer(a, { credits: 10_000 });
    up.always({ mode: 'cut', afterChunks: 0 });
    const res = await post(a, '/v1/chat/completions', c.key, chat('token-gpt', { stream: true }));
    expect(res.status).toBe(200);
    await waitFor(async () => (await ledger(c.userId)).length === 3);
    expect(await balance(c.userId)).toBe(10_000);
    expect((await ledger(c.userId)).at(-1)!.event_type).toBe('refund');
  });

  it('bills a stream the client walked away from for what was delivered', async () => {
    const c = await newConsumer(a, { credits: 100_000 });
    const content = 'x'.repeat(400);
    up.always({ mode: 'ok', content, chunks: 40, chunkDelayMs: 50 });
    const abort = new AbortController();
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${c.key}`, 'content-type': 'application/json' },
      body: JSON.stringify(chat('token-gpt', { stream: true, max_tokens: 1000 })),
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-credits-remaining')).toEqual(expect.any(String));
    const reader = res.body!.getReader();
    let seen = '';
    while ((seen.match(/"content":"x+"/g) ?? []).length < 3) {
      const { value } = await reader.read();
      seen += new TextDecoder().decode(value);
    }
    abort.abort();
    await waitFor(async () => (await ledger(c.userId)).length === 3);
    const cost = await charged(c, 100_000);
    const full = estimateTokens(messagesText(chat('x').messages)) + estimateTokens(content);
    expect(cost).toBeGreaterThan(estimateTokens(messagesText(chat('x').messages)));
    expect(cost).toBeLessThan(full);
    expect((await ledger(c.userId)).at(-1)!.event_type).toBe('settle');
  });

  it('charges images per image and per size, and nothing for a free model', async () => {
    const c = await newConsumer(a, { credits: 1000 });
    const two = await post(a, '/v1/images/generations', c.key, {
      model: 'paid-image',
      prompt: 'a ledger',
      n: 2,
    });
    expect(two.status).toBe(200);
    expect(two.body.data).toHaveLength(2);
    expect(await charged(c, 1000)).toBe(80);
    expect(two.headers.get('x-credits-remaining')).toBe('920');
    const wide = await post(a, '/v1/images/generations', c.key, {
      model: 'paid-image',
      prompt: 'a wide ledger',
      size: '1792x1024',
    });
    expect(wide.status).toBe(200);
    expect(await charged(c, 1000)).toBe(160);
    const rowsBefore = (await ledger(c.userId)).length;
    const free = await post(a, '/v1/chat/completions', c.key, chat('free-gpt'));
    expect(free.status).toBe(200);
    expect(free.headers.get('x-credits-remaining')).toBeNull();
    expect(await ledger(c.userId)).toHaveLength(rowsBefore);
  });

  describe('Idempotency-Key', () => {
    it('replays the same answer for a retry with one charge and one upstream call', async () => {
      const c = await newConsumer(a, { credits: 100 });
      const headers = { 'idempotency-key': 'retry-1' };
      const first = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'), headers);
      const again = await post(b, '/v1/chat/completions', c.key, chat('flat-gpt'), headers);
      expect(first.status).toBe(200);
      expect(again.status).toBe(200);
      expect(again.body).toEqual(first.body);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      expect(up.count).toBe(1);
      expect(await charged(c, 100)).toBe(10);
    });

    it('runs concurrent duplicates once, on two replicas, while the first is in flight', async () => {
      const c = await newConsumer(a, { credits: 100 });
      up.always({ mode: 'ok', delayMs: 400 });
      const headers = { 'idempotency-key': 'parallel-1' };
      const replies = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          post(i % 2 ? a : b, '/v1/chat/completions', c.key, chat('flat-gpt'), headers),
        ),
      );
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
      expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
      expect(up.count).toBe(1);
      expect(await charged(c, 100)).toBe(10);
    });

    it('answers 409 idempotency_conflict for the same key with a different body', async () => {
      const c = await newConsumer(a, { credits: 100 });
      const headers = { 'idempotency-key': 'conflict-1' };
      expect((await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'), headers)).status).toBe(
        200,
      );
      const other = await post(
        a,
        '/v1/chat/completions',
        c.key,
        chat('flat-gpt', { temperature: 0.5 }),
        headers,
      );
      expect(other.status).toBe(409);
      expect(other.body.error).toMatchObject({
        type: 'conflict_error',
        code: 'idempotency_conflict',
        param: 'Idempotency-Key',
      });
      expect(up.count).toBe(1);
      expect(await charged(c, 100)).toBe(10);
    });

    it('lets a retry run again after a failed attempt, charging only the success', async () => {
      const c = await newConsumer(a, { credits: 100 });
      const headers = { 'idempotency-key': 'after-failure' };
      up.always({ mode: 'status', status: 500 });
      const failed = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'), headers);
      expect(failed.status).toBe(502);
      expect(await charged(c, 100)).toBe(0);
      up.always({ mode: 'ok' });
      const retry = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'), headers);
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      expect(await charged(c, 100)).toBe(10);
    });

    it('replays a streamed answer as a stream', async () => {
      const c = await newConsumer(a, { credits: 100 });
      up.always({ mode: 'ok', content: 'streamed once' });
      const headers = { 'idempotency-key': 'stream-1' };
      const body = chat('flat-gpt', { stream: true });
      const first = await post(a, '/v1/chat/completions', c.key, body, headers);
      const again = await post(a, '/v1/chat/completions', c.key, body, headers);
      const text = (sse: string) =>
        sse
          .split('\n')
          .filter((l) => l.startsWith('data: {'))
          .map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? '')
          .join('');
      expect(text(first.text)).toBe('streamed once');
      expect(again.headers.get('content-type')).toContain('text/event-stream');
      expect(text(again.text)).toBe('streamed once');
      expect(up.count).toBe(1);
      expect(await charged(c, 100)).toBe(10);
    });

    it('rejects a malformed key with 400 and charges nothing', async () => {
      const c = await newConsumer(a, { credits: 100 });
      const res = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'), {
        'idempotency-key': 'x'.repeat(300),
      });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_idempotency_key');
      expect(up.count).toBe(0);
      expect(await charged(c, 100)).toBe(0);
    });
  });

  describe('a hold that commits alongside the upstream call', () => {
    const overlapped = () => metric(a, 'gateway_credit_holds_overlapped_total');
    /** A consumer whose balance replica a has just seen (one flat-gpt request, price 10). */
    const seenOnA = async (credits = 100_000) => {
      const c = await newConsumer(a, { credits });
      expect((await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'))).status).toBe(200);
      return c;
    };

    it('starts the upstream call before the hold commits once the balance is known, and bills the same', async () => {
      const before = await overlapped();
      const c = await seenOnA();
      // The first request of an account this replica has not seen waits for its hold.
      expect(await overlapped()).toBe(before);
      const res = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'));
      expect(res.status).toBe(200);
      expect(await overlapped()).toBe(before + 1);
      expect(res.headers.get('x-credits-remaining')).toBe(String(100_000 - 20));
      // A stream's headers (with the balance after its hold) wait for the hold too.
      const stream = await post(
        a,
        '/v1/chat/completions',
        c.key,
        chat('flat-gpt', { stream: true }),
      );
      expect(stream.status).toBe(200);
      expect(stream.text).toContain('data: [DONE]');
      expect(stream.headers.get('x-credits-remaining')).toBe(String(100_000 - 30));
      expect(await overlapped()).toBe(before + 2);
      expect((await ledger(c.userId)).map((r) => r.event_type)).toEqual([
        'grant',
        ...Array(3).fill(['debit', 'settle']).flat(),
      ]);
      expect(await balance(c.userId)).toBe(100_000 - 30);
    });

    it('waits for the hold when the known balance is under 100 times it', async () => {
      const c = await seenOnA(999); // 989 left after the first request: under 100 × 10
      const before = await overlapped();
      expect((await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'))).status).toBe(200);
      expect(await overlapped()).toBe(before);
      expect(await balance(c.userId)).toBe(999 - 20);
    });

    it('answers 402, charges nothing and aborts the upstream call when that hold is refused', async () => {
      const c = await seenOnA();
      // Spent elsewhere: replica b takes almost everything, so replica a's view is stale.
      const adjust = await fetch(`${b.url}/admin/credits/adjust`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ user_id: c.userId, amount: -(100_000 - 10 - 5), description: 'x' }),
      });
      expect(adjust.status).toBe(201);
      up.reset();
      up.always({ mode: 'ok', delayMs: 400 });
      const before = await overlapped();
      const res = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'));
      expect(res.status).toBe(402);
      expect(res.body.error.code).toBe('insufficient_credits');
      expect(await overlapped()).toBe(before + 1);
      expect(up.count).toBe(1);
      await waitFor(async () => up.aborted === 1);
      // The aborted attempt is logged as what it was, not as a client that went away.
      const requestId = res.headers.get('x-request-id')!;
      await waitFor(async () => a.logs.some((l) => l.includes(requestId) && l.includes('attempt')));
      const attempt = a.logs.find((l) => l.includes(requestId) && l.includes('attempt'))!;
      expect(JSON.parse(attempt)).toMatchObject({ outcome: 'aborted' });
      expect(attempt).toContain('credit hold failed');
      expect(attempt).not.toContain('client closed');
      expect(await balance(c.userId)).toBe(5);
      expect((await ledger(c.userId)).map((r) => r.event_type)).toEqual([
        'grant',
        'debit',
        'settle',
        'admin_adjustment',
      ]);
      // The refusal is remembered: the next request waits for its hold (402 before any call).
      up.reset();
      expect((await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'))).status).toBe(402);
      expect(up.count).toBe(0);
    });

    it('refunds the hold when the upstream fails before the hold has committed', async () => {
      const c = await seenOnA();
      up.always({ mode: 'status', status: 500 });
      const before = await overlapped();
      const res = await post(a, '/v1/chat/completions', c.key, chat('flat-gpt'));
      expect(res.status).toBe(502);
      expect(await overlapped()).toBe(before + 1);
      expect(await balance(c.userId)).toBe(100_000 - 10);
      expect((await ledger(c.userId)).map((r) => r.event_type)).toEqual([
        'grant',
        'debit',
        'settle',
        'debit',
        'refund',
      ]);
    });
  });

  it('with CREDIT_SETTLE_AFTER_RESPONSE, answers before the settle commits and bills the same', async () => {
    const c = await newConsumer(a, { credits: 10_000 });
    up.always({
      mode: 'ok',
      delayMs: 300,
      usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
    });
    const answer = post(lateSettle, '/v1/chat/completions', c.key, chat('token-gpt'));
    // Once the hold is in, lock the account's row: the settle cannot commit until it is let go.
    await waitFor(async () => (await ledger(c.userId)).length === 2);
    const locker = new Client({ connectionString: a.databaseUrl });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('SELECT 1 FROM user_credits WHERE user_id = $1 FOR UPDATE', [c.userId]);
    let res: Reply | 'timeout';
    try {
      res = await Promise.race([
        answer,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 3_000)),
      ]);
      expect(res).not.toBe('timeout');
      expect((await ledger(c.userId)).map((r) => r.event_type)).toEqual(['grant', 'debit']);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    res = res as Reply;
    expect(res.status).toBe(200);
    // Computed from the hold, not read back from the settle.
    expect(res.headers.get('x-credits-remaining')).toBe(String(10_000 - 18));
    await waitFor(async () => (await ledger(c.userId)).length === 3);
    expect((await ledger(c.userId)).map((r) => r.event_type)).toEqual(['grant', 'debit', 'settle']);
    expect(await charged(c, 10_000)).toBe(18);
    const requestId = res.headers.get('x-request-id');
    await waitFor(
      async () =>
        (await pg.query(`SELECT credits FROM request_logs WHERE request_id = $1`, [requestId]))
          .rows[0]?.credits === '18',
    );
    // Usage beyond the hold is charged as far as the balance goes: that settle is waited for.
    up.reset();
    up.always({
      mode: 'ok',
      usage: { prompt_tokens: 11, completion_tokens: 9_000, total_tokens: 9_011 },
    });
    const over = await post(
      lateSettle,
      '/v1/chat/completions',
      c.key,
      chat('token-gpt', { max_tokens: 10 }),
    );
    expect(over.status).toBe(200);
    expect(await charged(c, 10_000)).toBe(18 + 9_011);
    expect(over.headers.get('x-credits-remaining')).toBe(String(10_000 - 18 - 9_011));
  });

  it('leaves a clean ledger behind: the audit finds nothing', async () => {
    const audit = await fetch(`${a.url}/admin/credits/audit`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    const body = await audit.json();
    expect(body.balance_mismatches).toEqual([]);
    expect(body.negative_balances).toEqual([]);
    expect(body.duplicate_idempotency_keys).toEqual([]);
    const open = await pg.query(
      `SELECT count(*)::int AS n FROM credit_ledger d WHERE d.event_type = 'debit' AND NOT EXISTS (
         SELECT 1 FROM credit_ledger c WHERE c.user_id = d.user_id AND c.idempotency_key = 'close:' || d.id)`,
    );
    expect(open.rows[0].n).toBe(0);
  });
});
