import { completionToChunks, StreamAccumulator } from './stream-accumulator';

describe('StreamAccumulator', () => {
  it('rebuilds the completion, tool calls and usage from chunks', () => {
    const acc = new StreamAccumulator('m');
    const base = { id: 'c1', created: 5, model: 'm' };
    acc.add({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] });
    acc.add({ ...base, choices: [{ index: 0, delta: { content: 'Hel' } }] });
    acc.add({ ...base, choices: [{ index: 0, delta: { content: 'lo' } }] });
    acc.add({
      ...base,
      choices: [
        {
          index: 1,
          delta: {
            tool_calls: [{ index: 0, id: 't', function: { name: 'f', arguments: '{"a"' } }],
          },
        },
      ],
    });
    acc.add({
      ...base,
      choices: [
        { index: 1, delta: { tool_calls: [{ index: 0, function: { arguments: ':1}' } }] } },
      ],
    });
    acc.add({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    acc.add({
      ...base,
      choices: [],
      usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
    });
    const completion = acc.completion();
    expect(completion).toMatchObject({
      id: 'c1',
      object: 'chat.completion',
      created: 5,
      model: 'm',
    });
    expect(completion.choices[0]).toMatchObject({
      message: { role: 'assistant', content: 'Hello' },
      finish_reason: 'stop',
    });
    expect(completion.choices[1].message).toMatchObject({
      content: null,
      tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
    });
    expect(completion.usage).toEqual({ prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
    expect(acc.deliveredChars).toBe(5 + 7);
  });

  it('replays a stored completion as chunks that rebuild the same answer', () => {
    const stored = {
      id: 'c2',
      object: 'chat.completion',
      created: 9,
      model: 'm',
      choices: [
        { index: 0, message: { role: 'assistant', content: 'cached!' }, finish_reason: 'stop' },
      ],
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
    };
    const frames = completionToChunks(stored, true);
    const acc = new StreamAccumulator('m');
    for (const f of frames) acc.add(JSON.parse(f));
    expect(acc.completion()).toMatchObject({
      id: 'c2',
      choices: [{ message: { content: 'cached!' }, finish_reason: 'stop' }],
      usage: stored.usage,
    });
    expect(completionToChunks(stored, false).some((f) => f.includes('"usage"'))).toBe(false);
  });
});
