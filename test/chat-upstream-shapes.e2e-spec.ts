import OpenAI from 'openai';
import { call, Reply } from './support/api-call';
import { newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, writeProvidersFile } from './support/mock-upstream';
import { waitFor } from './support/wait-for';

/**
 * Upstream answers of unusual shapes, sent by a real HTTP upstream and read back as a client
 * would: valid SSE the relay must keep valid, invalid answers that must take the invalid-answer
 * path (next provider or 502, refunded, not cached), refusals and logprobs that a cached copy
 * must keep, and request parameters of the official SDK that must reach the upstream as sent.
 */

const PRICE = 10;
const CREDITS = 1000;

const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id: 'chatcmpl-shapes',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'solo-gpt',
    choices,
    ...extra,
  });
const sse = (...events: string[]) => events.map((e) => `data: ${e}\n\n`).join('');
const ask = (text: string, extra: Record<string, unknown> = {}) => ({
  model: 'solo-gpt',
  messages: [{ role: 'user', content: text }],
  ...extra,
});

interface StreamReply {
  status: number;
  headers: Headers;
  text: string;
  /** The `data:` payloads of the stream, each event's lines joined as an SSE reader does. */
  data: string[];
}

describe('chat completions: upstream answers of unusual shapes', () => {
  let gw: TestGateway;
  let solo: MockUpstream;
  let primary: MockUpstream;
  let backup: MockUpstream;

  beforeAll(async () => {
    [solo, primary, backup] = await Promise.all(
      ['solo', 'primary', 'backup'].map((name) => startMockUpstream(name)),
    );
    const file = writeProvidersFile(`
providers:
  - name: solo
    kind: openai
    base_url: ${solo.url}
    priority: 1
    models: [solo-gpt]
    timeout_ms: 3000
  - name: primary
    kind: openai
    base_url: ${primary.url}
    priority: 1
    models: [pair-gpt]
    timeout_ms: 3000
  - name: backup
    kind: openai
    base_url: ${backup.url}
    priority: 2
    models: [pair-gpt]
    timeout_ms: 3000
pricing:
  - { model: solo-gpt, per_request: ${PRICE} }
  - { model: pair-gpt, per_request: ${PRICE} }
`);
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        CB_FAILURE_THRESHOLD: '100000',
        UPSTREAM_RETRY_BACKOFF_MS: '10',
      },
    });
  });

  afterAll(async () => {
    await gw?.close();
    await Promise.all([solo, primary, backup].map((u) => u?.stop()));
  });

  beforeEach(() => {
    for (const u of [solo, primary, backup]) u.reset();
  });

  const consumer = () => newConsumer(gw, { credits: CREDITS });
  const chat = (c: TestConsumer, body: unknown, headers?: Record<string, string>) =>
    call(gw, 'POST', '/v1/chat/completions', c.key, body, headers);
  const sdk = (c: TestConsumer) =>
    new OpenAI({ apiKey: c.key, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 20_000 });

  async function stream(c: TestConsumer, body: Record<string, unknown>): Promise<StreamReply> {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${c.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
    });
    const text = await res.text();
    const data = text
      .split('\n\n')
      .filter((event) => event.startsWith('data: '))
      .map((event) =>
        event
          .split('\n')
          .map((line) => line.slice('data: '.length))
          .join('\n'),
      );
    return { status: res.status, headers: res.headers, text, data };
  }

  /** Waits until the request's hold is back: the balance is whole and the ledger says refund. */
  async function expectRefunded(c: TestConsumer): Promise<void> {
    await waitFor(
      async () => (await call(gw, 'GET', '/v1/credits', c.key)).body.balance === CREDITS,
      5000,
      'balance restored',
    );
    const ledger = await call(gw, 'GET', '/v1/credits/ledger', c.key);
    const types = (ledger.body.data as { event_type: string }[]).map((e) => e.event_type);
    expect(types).toContain('refund');
  }

  function expectInvalidAnswer(reply: Reply): void {
    expect(reply.status).toBe(502);
    expect(reply.body.error).toMatchObject({
      type: 'upstream_error',
      code: 'upstream_error',
      message: 'The upstream provider sent an invalid response',
      param: null,
    });
  }

  describe('an upstream event sent as several data lines', () => {
    const multiLine =
      `data: {"id":"chatcmpl-ml","object":"chat.completion.chunk",\n` +
      `data: "created":1,"model":"solo-gpt",\n` +
      `data: "choices":[{"index":0,"delta":{"role":"assistant","content":"two "},"finish_reason":null}]}\n\n` +
      sse(
        chunk([{ index: 0, delta: { content: 'lines' }, finish_reason: null }]),
        chunk([{ index: 0, delta: {}, finish_reason: 'stop' }]),
        '[DONE]',
      );

    it('reaches the openai SDK as one valid event', async () => {
      const c = await consumer();
      solo.next({ mode: 'raw', body: multiLine });
      const events = await sdk(c).chat.completions.create({
        model: 'solo-gpt',
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
      });
      let text = '';
      for await (const event of events) text += event.choices[0]?.delta.content ?? '';
      expect(text).toBe('two lines');
    });

    it('is written as one data: field per line, never a bare line', async () => {
      const c = await consumer();
      solo.next({ mode: 'raw', body: multiLine });
      const reply = await stream(c, ask('hi'));
      expect(reply.status).toBe(200);
      expect(reply.text.split('\n').filter((l) => l !== '' && !l.startsWith('data: '))).toEqual([]);
      expect(JSON.parse(reply.data[0])).toMatchObject({
        id: 'chatcmpl-ml',
        created: 1,
        choices: [{ delta: { content: 'two ' } }],
      });
      expect(reply.data.at(-1)).toBe('[DONE]');
    });
  });

  describe('a non-streamed answer of the wrong shape', () => {
    const shapes: [string, unknown][] = [
      ['a null choice', { choices: [null] }],
      ['choices that are not a list', { choices: { 0: { message: { content: 'x' } } } }],
      ['no choice at all', { choices: [] }],
      ['a choice without a message', { choices: [{ index: 0, finish_reason: 'stop' }] }],
      [
        'content that is not text',
        { choices: [{ index: 0, message: { role: 'assistant', content: { text: 'x' } } }] },
      ],
      [
        'tool_calls that are not a list',
        {
          choices: [
            { index: 0, message: { role: 'assistant', content: null, tool_calls: { id: 't' } } },
          ],
        },
      ],
      [
        'usage counts that are not numbers',
        {
          choices: [{ index: 0, message: { role: 'assistant', content: 'x' } }],
          usage: { prompt_tokens: 'ten', completion_tokens: 1, total_tokens: 11 },
        },
      ],
    ];

    it.each(shapes)('with %s is a refunded 502, not a 500', async (_what, answer) => {
      const c = await consumer();
      solo.next({ mode: 'raw', body: JSON.stringify(answer) });
      expectInvalidAnswer(await chat(c, ask('shape')));
      expect(solo.count).toBe(1);
      await expectRefunded(c);
    });

    it('moves on to the next provider', async () => {
      const c = await consumer();
      primary.next({ mode: 'raw', body: JSON.stringify({ choices: [null] }) });
      backup.next({ mode: 'ok', content: 'from the backup' });
      const reply = await chat(c, { ...ask('shape'), model: 'pair-gpt' });
      expect(reply.status).toBe(200);
      expect(reply.headers.get('x-provider')).toBe('backup');
      expect(reply.body.choices[0].message.content).toBe('from the backup');
      expect([primary.count, backup.count]).toEqual([1, 1]);
    });
  });

  describe('a stream without any chunk', () => {
    it('whose only event is [DONE] is a refunded 502, and nothing is cached', async () => {
      const c = await consumer();
      solo.next({ mode: 'raw', body: sse('[DONE]') });
      const question = ask('empty', { temperature: 0 });
      const reply = await stream(c, question);
      expect(reply.status).toBe(502);
      expectInvalidAnswer({ ...reply, body: JSON.parse(reply.text) });
      await expectRefunded(c);
      solo.next({ mode: 'ok', content: 'a real answer' });
      const again = await chat(c, question);
      expect(again.headers.get('x-cache')).toBe('miss');
      expect(again.body.choices[0].message.content).toBe('a real answer');
      expect(solo.count).toBe(2);
    });

    it('whose only event is [DONE] moves on to the next provider', async () => {
      const c = await consumer();
      primary.next({ mode: 'raw', body: sse('[DONE]') });
      backup.next({ mode: 'ok', content: 'streamed by the backup' });
      const reply = await stream(c, { ...ask('empty'), model: 'pair-gpt' });
      expect(reply.status).toBe(200);
      expect(reply.headers.get('x-provider')).toBe('backup');
      const text = reply.data
        .filter((d) => d !== '[DONE]')
        .map((d) => JSON.parse(d).choices[0]?.delta.content ?? '')
        .join('');
      expect(text).toBe('streamed by the backup');
    });

    it('with only a usage chunk before [DONE] ends in an error event, refunded and not cached', async () => {
      const c = await consumer();
      const usage = { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 };
      solo.next({ mode: 'raw', body: sse(chunk([], { usage }), '[DONE]') });
      const question = ask('usage only', { temperature: 0 });
      const reply = await stream(c, question);
      expect(reply.status).toBe(200);
      expect(reply.data).not.toContain('[DONE]');
      expect(JSON.parse(reply.data.at(-1)!).error).toMatchObject({ code: 'stream_interrupted' });
      await expectRefunded(c);
      solo.next({ mode: 'ok' });
      expect((await chat(c, question)).headers.get('x-cache')).toBe('miss');
    });
  });

  describe('a stream that ends without [DONE]', () => {
    const piece = (index: number, content: string, finish: string | null = null) =>
      chunk([{ index, delta: { content }, finish_reason: finish }]);

    it('is whole when every choice said why it ended: [DONE] for the client, billed, cached', async () => {
      const c = await consumer();
      solo.next({ mode: 'raw', body: sse(piece(0, 'all '), piece(0, 'there', 'stop')) });
      const question = ask('no done', { temperature: 0 });
      const reply = await stream(c, question);
      expect(reply.status).toBe(200);
      expect(reply.data.at(-1)).toBe('[DONE]');
      expect(reply.text).not.toContain('stream_interrupted');
      const balance = (await call(gw, 'GET', '/v1/credits', c.key)).body.balance;
      expect(balance).toBe(CREDITS - PRICE);
      const again = await chat(c, question);
      expect(again.headers.get('x-cache')).toBe('hit');
      expect(again.body.choices[0].message.content).toBe('all there');
    });

    it('is cut short when a choice asked for never finished', async () => {
      const c = await consumer();
      const body = sse(piece(0, 'one', 'stop'), piece(1, 'two, and then'));
      solo.next({ mode: 'raw', body });
      const reply = await stream(c, ask('two of them', { n: 2 }));
      expect(reply.data).not.toContain('[DONE]');
      expect(JSON.parse(reply.data.at(-1)!).error).toMatchObject({ code: 'stream_interrupted' });

      solo.next({ mode: 'raw', body: sse(piece(0, 'half an answer')) });
      const single = await stream(c, ask('one of them'));
      expect(JSON.parse(single.data.at(-1)!).error).toMatchObject({ code: 'stream_interrupted' });
    });
  });

  it('keeps a streamed refusal and its logprobs in the cached answer', async () => {
    const c = await consumer();
    const lp = (token: string) => ({ token, logprob: -0.5, bytes: null, top_logprobs: [] });
    solo.next({
      mode: 'raw',
      body: sse(
        chunk([
          {
            index: 0,
            delta: { role: 'assistant', content: '', refusal: null },
            logprobs: null,
            finish_reason: null,
          },
        ]),
        chunk([
          {
            index: 0,
            delta: { refusal: 'I cannot ' },
            logprobs: { content: null, refusal: [lp('I'), lp(' cannot ')] },
            finish_reason: null,
          },
        ]),
        chunk([
          {
            index: 0,
            delta: { refusal: 'do that.' },
            logprobs: { content: null, refusal: [lp('do that.')] },
            finish_reason: null,
          },
        ]),
        chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]),
        '[DONE]',
      ),
    });
    const question = ask('refuse', { temperature: 0, logprobs: true });
    const live = await stream(c, question);
    expect(live.headers.get('x-cache')).toBe('miss');
    expect(live.data.at(-1)).toBe('[DONE]');

    const json = await chat(c, question);
    expect(json.headers.get('x-cache')).toBe('hit');
    expect(json.body.choices[0]).toMatchObject({
      message: { role: 'assistant', content: null, refusal: 'I cannot do that.' },
      logprobs: { content: null, refusal: [lp('I'), lp(' cannot '), lp('do that.')] },
    });

    const replay = await stream(c, question);
    expect(replay.headers.get('x-cache')).toBe('hit');
    const chunks = replay.data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
    expect(chunks.map((e) => e.choices[0].delta.refusal ?? '').join('')).toBe('I cannot do that.');
    expect(chunks.flatMap((e) => e.choices[0].logprobs?.refusal ?? [])).toEqual([
      lp('I'),
      lp(' cannot '),
      lp('do that.'),
    ]);
    expect(solo.count).toBe(1);
  });

  describe('request parameters of the openai SDK', () => {
    const added = {
      verbosity: 'low' as const,
      prompt_cache_key: 'conversation-42',
      safety_identifier: 'user-hash-0f3a',
      functions: [
        {
          name: 'get_weather',
          description: 'Weather in a city',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      ],
      function_call: { name: 'get_weather' },
    };

    it('are accepted and reach the upstream unchanged', async () => {
      const c = await consumer();
      const client = sdk(c);
      const answer = await client.chat.completions.create({
        model: 'solo-gpt',
        messages: [{ role: 'user', content: 'weather?' }],
        ...added,
      });
      expect(answer.choices[0].message.content).toBe('hello from solo');
      expect(solo.requests[0].body).toMatchObject(added);

      const events = await client.chat.completions.create({
        model: 'solo-gpt',
        messages: [{ role: 'user', content: 'weather?' }],
        stream: true,
        stream_options: { include_obfuscation: false },
        function_call: 'auto',
        verbosity: 'high',
      });
      for await (const event of events) expect(event.object).toBe('chat.completion.chunk');
      expect(solo.requests[1].body).toMatchObject({
        stream: true,
        // include_usage is the gateway's own (billing); the client's option goes as it is.
        stream_options: { include_usage: true, include_obfuscation: false },
        function_call: 'auto',
        verbosity: 'high',
      });
    });

    it('count in the response cache key when they change the answer', async () => {
      const c = await consumer();
      const low = await chat(c, ask('cache me', { temperature: 0, verbosity: 'low' }));
      const high = await chat(c, ask('cache me', { temperature: 0, verbosity: 'high' }));
      expect([low.headers.get('x-cache'), high.headers.get('x-cache')]).toEqual(['miss', 'miss']);
      const lowAgain = await chat(c, ask('cache me', { temperature: 0, verbosity: 'low' }));
      expect(lowAgain.headers.get('x-cache')).toBe('hit');
    });

    it.each([
      ['verbosity', { verbosity: 'loud' }, 'verbosity'],
      ['a long safety_identifier', { safety_identifier: 'x'.repeat(65) }, 'safety_identifier'],
      ['a long prompt_cache_key', { prompt_cache_key: 'x'.repeat(65) }, 'prompt_cache_key'],
      ['a function without a name', { functions: [{ description: 'x' }] }, 'functions[0].name'],
      ['an unknown function_call', { function_call: 'sometimes' }, 'function_call'],
      [
        'include_obfuscation that is not a boolean',
        { stream: true, stream_options: { include_obfuscation: 'yes' } },
        'stream_options.include_obfuscation',
      ],
      [
        'an unknown stream option',
        { stream: true, stream_options: { include_everything: true } },
        'stream_options.include_everything',
      ],
    ])('refuse %s with a 400 naming it', async (_what, extra, param) => {
      const c = await consumer();
      const reply = await chat(c, ask('bad', extra));
      expect(reply.status).toBe(400);
      expect(reply.body.error).toMatchObject({ type: 'invalid_request_error', param });
      expect(solo.count).toBe(0);
    });
  });
});
