import { newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, oneProviderFile } from './support/mock-upstream';
import { startRedisServer } from './support/redis-server';
import { waitFor } from './support/wait-for';

const MODEL = 'gpt-conv-test';

interface Message {
  role: string;
  content: string | null;
}

function providers(upstream: MockUpstream): string {
  return oneProviderFile(upstream.url, [MODEL], [`{ model: ${MODEL}, per_request: 3 }`]);
}

async function chat(
  gw: TestGateway,
  consumer: TestConsumer,
  messages: Message[],
  conversationId: string | undefined,
  extra: Record<string, unknown> = {},
): Promise<{ status: number; headers: Headers; text: string }> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${consumer.key}`,
    'content-type': 'application/json',
  };
  if (conversationId !== undefined) headers['x-conversation-id'] = conversationId;
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: MODEL, messages, ...extra }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const user = (content: string): Message => ({ role: 'user', content });
const assistant = (content: string): Message => ({ role: 'assistant', content });

describe('conversations (X-Conversation-Id)', () => {
  let upstream: MockUpstream;
  let gw: TestGateway;

  beforeAll(async () => {
    upstream = await startMockUpstream('primary');
    gw = await startGateway({
      env: { PROVIDERS_FILE: providers(upstream), CONVERSATION_MAX_MESSAGES: '6' },
    });
  });
  afterAll(async () => {
    await gw.close();
    await upstream.stop();
  });
  beforeEach(() => {
    upstream.reset();
  });

  const sentUpstream = (i = -1) =>
    (upstream.requests.at(i)!.body.messages as Message[]).map((m) => ({
      role: m.role,
      content: m.content,
    }));

  it('sends the earlier turns upstream, in order, so the client sends only the new message', async () => {
    const consumer = await newConsumer(gw);
    upstream.next({ mode: 'ok', content: 'a1' }, { mode: 'ok', content: 'a2' });
    const first = await chat(
      gw,
      consumer,
      [{ role: 'system', content: 'be brief' }, user('q1')],
      'chat-001',
    );
    expect(first.status).toBe(200);
    expect(first.headers.get('x-conversation-id')).toBe('chat-001');
    expect(sentUpstream()).toEqual([{ role: 'system', content: 'be brief' }, user('q1')]);

    await chat(gw, consumer, [user('q2')], 'chat-001');
    expect(sentUpstream()).toEqual([
      { role: 'system', content: 'be brief' },
      user('q1'),
      assistant('a1'),
      user('q2'),
    ]);

    await chat(gw, consumer, [user('q3')], 'chat-001');
    expect(sentUpstream()).toEqual([
      { role: 'system', content: 'be brief' },
      user('q1'),
      assistant('a1'),
      user('q2'),
      assistant('a2'),
      user('q3'),
    ]);
  });

  it('appends a streamed reply like any other', async () => {
    const consumer = await newConsumer(gw);
    upstream.next({ mode: 'ok', content: 'streamed reply', chunks: 3 });
    const streamed = await chat(gw, consumer, [user('hello')], 'stream-1', { stream: true });
    expect(streamed.text).toContain('[DONE]');
    await chat(gw, consumer, [user('and then?')], 'stream-1');
    expect(sentUpstream()).toEqual([user('hello'), assistant('streamed reply'), user('and then?')]);
  });

  it("keeps each user's conversations apart, even under the same id", async () => {
    const alice = await newConsumer(gw);
    const bob = await newConsumer(gw);
    await chat(gw, alice, [user('alice secret')], 'shared-name');
    await chat(gw, bob, [user('bob asks')], 'shared-name');
    expect(sentUpstream()).toEqual([user('bob asks')]);
  });

  it('leaves the history as it was when a turn fails', async () => {
    const consumer = await newConsumer(gw);
    upstream.next({ mode: 'ok', content: 'kept' });
    await chat(gw, consumer, [user('one')], 'fails-1');
    upstream.next({ mode: 'status', status: 400, message: 'rejected upstream' });
    expect((await chat(gw, consumer, [user('lost')], 'fails-1')).status).toBe(400);
    await chat(gw, consumer, [user('two')], 'fails-1');
    expect(sentUpstream()).toEqual([user('one'), assistant('kept'), user('two')]);
  });

  it('remembers a refusal as text, so the next turn is not an assistant message without content', async () => {
    const consumer = await newConsumer(gw);
    upstream.next({
      mode: 'raw',
      body: JSON.stringify({
        id: 'chatcmpl-refused',
        object: 'chat.completion',
        created: 1,
        model: MODEL,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: null, refusal: 'I cannot help with that.' },
            finish_reason: 'stop',
          },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 },
      }),
    });
    expect((await chat(gw, consumer, [user('something refused')], 'refused-1')).status).toBe(200);
    expect((await chat(gw, consumer, [user('something else')], 'refused-1')).status).toBe(200);
    // OpenAI refuses an assistant message whose content is null and that calls no tool.
    expect(sentUpstream()).toEqual([
      user('something refused'),
      assistant('I cannot help with that.'),
      user('something else'),
    ]);
  });

  it('bounds the history to CONVERSATION_MAX_MESSAGES, oldest turns first out', async () => {
    const consumer = await newConsumer(gw);
    for (let i = 1; i <= 5; i++) {
      upstream.next({ mode: 'ok', content: `a${i}` });
      await chat(gw, consumer, [user(`q${i}`)], 'long-1');
    }
    // At most 6 messages: the new question plus the latest history that starts with a question.
    expect(sentUpstream()).toEqual([
      user('q3'),
      assistant('a3'),
      user('q4'),
      assistant('a4'),
      user('q5'),
    ]);
  });

  it('refuses a malformed id with 400 before anything is charged or sent upstream', async () => {
    const consumer = await newConsumer(gw, { credits: 50 });
    for (const bad of ['', ' spaced id', 'x'.repeat(129), 'semi;colon', '-leading-dash']) {
      const res = await chat(gw, consumer, [user('hi')], bad);
      expect(res.status).toBe(400);
      const error = JSON.parse(res.text).error;
      expect(error).toMatchObject({
        type: 'invalid_request_error',
        code: 'invalid_conversation_id',
        param: 'x-conversation-id',
      });
    }
    expect(upstream.count).toBe(0);
    const credits = await fetch(`${gw.url}/v1/credits`, {
      headers: { authorization: `Bearer ${consumer.key}` },
    });
    expect((await credits.json()).balance).toBe(50);
  });

  it('without the header, nothing is remembered', async () => {
    const consumer = await newConsumer(gw);
    await chat(gw, consumer, [user('first')], undefined);
    await chat(gw, consumer, [user('second')], undefined);
    expect(sentUpstream()).toEqual([user('second')]);
  });
});

describe('conversations across Redis outages', () => {
  it('does not bring back the turns of an earlier outage in the next one', async () => {
    const upstream = await startMockUpstream('primary');
    const server = await startRedisServer();
    const gw = await startGateway({
      redis: server.url,
      env: { PROVIDERS_FILE: providers(upstream) },
    });
    const outages = () => gw.logs.filter((l) => l.includes('FALLBACK ACTIVATED')).length;
    const sentUpstream = () =>
      (upstream.requests.at(-1)!.body.messages as Message[]).map((m) => ({
        role: m.role,
        content: m.content,
      }));
    try {
      const consumer = await newConsumer(gw);
      await server.stop();
      await waitFor(() => outages() === 1, 15_000, 'first outage');
      upstream.next({ mode: 'ok', content: 'old reply' });
      await chat(gw, consumer, [user('during the first outage')], 'flapping');

      await server.restart();
      await waitFor(() => gw.logText().includes('FALLBACK DEACTIVATED'), 15_000, 'Redis back');
      await chat(gw, consumer, [user('on Redis again')], 'flapping');

      await server.stop();
      await waitFor(() => outages() === 2, 15_000, 'second outage');
      await chat(gw, consumer, [user('during the second outage')], 'flapping');
      // The first outage's turns were lost when Redis came back; they must not reappear now.
      expect(sentUpstream()).toEqual([user('during the second outage')]);
    } finally {
      await gw.close();
      await server.stop();
      await upstream.stop();
    }
  });
});
