import { completionFromChunks, replayAsSse, replayChunks } from './cache-replay';
import type { ChatCompletion } from './cache.types';

const completion: ChatCompletion = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1700000000,
  model: 'gpt-4o-mini',
  choices: [
    { index: 0, message: { role: 'assistant', content: 'Hello there' }, finish_reason: 'stop' },
  ],
  usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
};

describe('cache replay', () => {
  it('replays a completion as role, content and finish chunks, then usage when asked', () => {
    const chunks = replayChunks(completion, { includeUsage: true });
    expect(chunks.map((c) => c.choices[0]?.delta ?? 'usage')).toEqual([
      { role: 'assistant', content: '' },
      { content: 'Hello there' },
      {},
      'usage',
    ]);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === 'chatcmpl-1')).toBe(
      true,
    );
    expect(chunks[2].choices[0].finish_reason).toBe('stop');
    expect(chunks[3]).toMatchObject({ choices: [], usage: completion.usage });
    expect(replayChunks(completion, { includeUsage: false })).toHaveLength(3);
  });

  it('writes SSE frames ending with [DONE]', () => {
    const text = replayAsSse(completion, { includeUsage: false });
    const frames = text.split('\n\n').filter(Boolean);
    expect(frames.at(-1)).toBe('data: [DONE]');
    expect(frames.slice(0, -1).every((f) => f.startsWith('data: {'))).toBe(true);
  });

  it('reassembles what it replays (round trip), tool calls included', () => {
    expect(completionFromChunks(replayChunks(completion, { includeUsage: true }))).toEqual({
      ...completion,
      choices: [{ ...completion.choices[0], logprobs: null }],
    });
    const withTools: ChatCompletion = {
      ...completion,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: null,
            tool_calls: [
              { id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
            ],
          },
          finish_reason: 'tool_calls',
          logprobs: null,
        },
      ],
    };
    expect(completionFromChunks(replayChunks(withTools, { includeUsage: true }))).toEqual(
      withTools,
    );
  });

  it('assembles streamed deltas and refuses an unfinished stream', () => {
    const base = { id: 'x', object: 'chat.completion.chunk' as const, created: 1, model: 'm' };
    const chunks = [
      { ...base, choices: [{ index: 0, delta: { role: 'assistant' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: 'Hel' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: 'lo' }, finish_reason: null }] },
    ];
    expect(completionFromChunks(chunks)).toBeUndefined();
    const done = completionFromChunks([
      ...chunks,
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'length' }] },
    ]);
    expect(done?.choices[0]).toMatchObject({
      message: { role: 'assistant', content: 'Hello' },
      finish_reason: 'length',
    });
  });
});
