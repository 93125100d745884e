import { call } from './support/api-call';
import { newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, oneProviderFile } from './support/mock-upstream';

/**
 * What an answer that does not come from the upstream leaves behind. An Idempotency-Key replay
 * is an earlier request's answer again: it adds no turn to the conversation and carries the
 * headers of that request once it settled. A response-cache hit is a real answer to this turn:
 * it is appended to the conversation once and, when CACHE_HIT_PRICE bills it, says what is left
 * in x-credits-remaining.
 */

const MODEL = 'gpt-replay-test';

interface Message {
  role: string;
  content: string | null;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

const user = (content: string): Message => ({ role: 'user', content });
const assistant = (content: string): Message => ({ role: 'assistant', content });

function providers(upstream: MockUpstream): string {
  // Priced by tokens with a small max_tokens: the hold (estimated prompt + 50) is larger than
  // what the request settles to (the mock's usage, 11 + 7), so the balance after the hold and
  // the balance after the settle differ.
  return oneProviderFile(
    upstream.url,
    [MODEL],
    [`{ model: ${MODEL}, per_1k_prompt_tokens: 1000, per_1k_completion_tokens: 1000 }`],
  );
}

describe('replayed and cached answers: conversation history and credit headers', () => {
  let upstream: MockUpstream;
  let gw: TestGateway;

  beforeAll(async () => {
    upstream = await startMockUpstream('primary');
    gw = await startGateway({
      env: { PROVIDERS_FILE: providers(upstream), CACHE_HIT_PRICE: '1' },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });
  beforeEach(() => {
    upstream.reset();
  });

  async function chat(
    consumer: TestConsumer,
    messages: Message[],
    options: { conversation?: string; key?: string; stream?: boolean; temperature?: number } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${consumer.key}`,
      'content-type': 'application/json',
    };
    if (options.conversation) headers['x-conversation-id'] = options.conversation;
    if (options.key) headers['idempotency-key'] = options.key;
    const body: Record<string, unknown> = { model: MODEL, messages, max_tokens: 50 };
    if (options.stream) body.stream = true;
    if (options.temperature !== undefined) body.temperature = options.temperature;
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
    });
    const answer = { status: res.status, headers: res.headers, text: await res.text() };
    expect(answer.status).toBe(200);
    return answer;
  }

  const balance = async (consumer: TestConsumer): Promise<string> => {
    const res = await call(gw, 'GET', '/v1/credits', consumer.key);
    expect(res.status).toBe(200);
    return String(res.body.balance);
  };

  const sentUpstream = (): Message[] =>
    (upstream.requests.at(-1)!.body.messages as Message[]).map((m) => ({
      role: m.role,
      content: m.content,
    }));

  describe.each([
    ['non-stream', false],
    ['stream', true],
  ])('an Idempotency-Key replay (%s)', (_label, stream) => {
    it('adds nothing to the conversation: the next turn sees q1, a1, q2', async () => {
      const consumer = await newConsumer(gw);
      const conversation = `replay-conv-${stream ? 's' : 'j'}`;
      upstream.next({ mode: 'ok', content: 'a1' }, { mode: 'ok', content: 'a2' });
      const turn = { conversation, key: `turn-1-${conversation}`, stream };
      const first = await chat(consumer, [user('q1')], turn);
      const replay = await chat(consumer, [user('q1')], turn);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.text).toContain('a1');
      expect(upstream.count).toBe(1);

      await chat(consumer, [user('q2')], { conversation, stream });
      expect(upstream.count).toBe(2);
      expect(sentUpstream()).toEqual([user('q1'), assistant('a1'), user('q2')]);
    });

    it('says the balance the first request settled to, as GET /v1/credits does', async () => {
      const consumer = await newConsumer(gw, { credits: 3000 });
      const key = `balance-${stream ? 'stream' : 'json'}`;
      const first = await chat(consumer, [user('how much is left?')], { key, stream });
      const settled = await balance(consumer);
      expect(settled).toBe(String(3000 - 18));
      // A non-stream answer goes out after its settle; a stream's headers go out after the hold.
      if (!stream) expect(first.headers.get('x-credits-remaining')).toBe(settled);
      else expect(Number(first.headers.get('x-credits-remaining'))).toBeLessThan(3000 - 18);

      const replay = await chat(consumer, [user('how much is left?')], { key, stream });
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.headers.get('x-credits-remaining')).toBe(settled);
      expect(replay.headers.get('x-provider')).toBe(first.headers.get('x-provider'));
      expect(replay.headers.get('x-cache')).toBe(first.headers.get('x-cache'));
      expect(await balance(consumer)).toBe(settled);
      expect(upstream.count).toBe(1);
    });
  });

  it('appends a response-cache hit to its conversation once, as a real answer to the turn', async () => {
    const consumer = await newConsumer(gw);
    upstream.next({ mode: 'ok', content: 'cached a1' }, { mode: 'ok', content: 'a2' });
    // The same first turn in two conversations: the second is answered from the cache.
    await chat(consumer, [user('q1')], { conversation: 'cache-conv-1', temperature: 0 });
    const hit = await chat(consumer, [user('q1')], {
      conversation: 'cache-conv-2',
      temperature: 0,
    });
    expect(hit.headers.get('x-cache')).toBe('hit');
    expect(upstream.count).toBe(1);

    await chat(consumer, [user('q2')], { conversation: 'cache-conv-2' });
    expect(sentUpstream()).toEqual([user('q1'), assistant('cached a1'), user('q2')]);
  });

  it.each([
    ['non-stream', false],
    ['stream', true],
  ])(
    'says x-credits-remaining on a cache hit billed CACHE_HIT_PRICE (%s)',
    async (_label, stream) => {
      const consumer = await newConsumer(gw, { credits: 3000 });
      const question = [user(`cache me (${stream ? 'stream' : 'json'})`)];
      const miss = await chat(consumer, question, { temperature: 0 });
      expect(miss.headers.get('x-cache')).toBe('miss');
      const afterMiss = Number(await balance(consumer));

      const hit = await chat(consumer, question, { temperature: 0, stream });
      expect(hit.headers.get('x-cache')).toBe('hit');
      expect(await balance(consumer)).toBe(String(afterMiss - 1));
      expect(hit.headers.get('x-credits-remaining')).toBe(String(afterMiss - 1));

      // Replayed under an Idempotency-Key, the billed hit keeps its header and is not billed again.
      const key = `cache-hit-${stream ? 'stream' : 'json'}`;
      const keyed = await chat(consumer, question, { temperature: 0, stream, key });
      const replay = await chat(consumer, question, { temperature: 0, stream, key });
      expect(keyed.headers.get('x-cache')).toBe('hit');
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(replay.headers.get('x-credits-remaining')).toBe(String(afterMiss - 2));
      expect(await balance(consumer)).toBe(String(afterMiss - 2));
      expect(upstream.count).toBe(1);
    },
  );
});
