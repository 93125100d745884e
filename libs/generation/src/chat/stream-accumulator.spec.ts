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

  const token = (t: string) => ({ token: t, logprob: -0.1, bytes: null, top_logprobs: [] });

  it('keeps a streamed refusal and the logprobs of content and refusal', () => {
    const acc = new StreamAccumulator('m');
    const base = { id: 'c3', created: 7, model: 'm' };
    acc.add({
      ...base,
      choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null } }],
    });
    acc.add({
      ...base,
      choices: [
        {
          index: 0,
          delta: { refusal: "I can't " },
          logprobs: { content: null, refusal: [token('I'), token(" can't ")] },
        },
      ],
    });
    acc.add({
      ...base,
      choices: [
        {
          index: 0,
          delta: { refusal: 'help.' },
          logprobs: { content: null, refusal: [token('help.')] },
        },
      ],
    });
    acc.add({
      ...base,
      choices: [
        { index: 1, delta: { content: 'Hi' }, logprobs: { content: [token('Hi')], refusal: null } },
      ],
    });
    acc.add({
      ...base,
      choices: [
        { index: 1, delta: { content: '!' }, logprobs: { content: [token('!')], refusal: null } },
      ],
    });
    acc.add({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    acc.add({ ...base, choices: [{ index: 1, delta: {}, finish_reason: 'stop' }] });
    const completion = acc.completion();
    expect(completion.choices[0]).toEqual({
      index: 0,
      message: { role: 'assistant', content: null, refusal: "I can't help." },
      logprobs: { content: null, refusal: [token('I'), token(" can't "), token('help.')] },
      finish_reason: 'stop',
    });
    expect(completion.choices[1]).toEqual({
      index: 1,
      message: { role: 'assistant', content: 'Hi!' },
      logprobs: { content: [token('Hi'), token('!')], refusal: null },
      finish_reason: 'stop',
    });
    expect(acc.deliveredChars).toBe("I can't help.".length + 3);
  });

  it('replays a refusal and logprobs so that the chunks rebuild the same answer', () => {
    const stored = {
      id: 'c4',
      object: 'chat.completion',
      created: 9,
      model: 'm',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: null, refusal: 'No.' },
          logprobs: { content: null, refusal: [token('No.')] },
          finish_reason: 'stop',
        },
        {
          index: 1,
          message: { role: 'assistant', content: 'Yes' },
          logprobs: { content: [token('Yes')], refusal: null },
          finish_reason: 'stop',
        },
      ],
    };
    const frames = completionToChunks(stored, false).map((f) => JSON.parse(f));
    expect(frames[1].choices[0]).toMatchObject({
      delta: { refusal: 'No.' },
      logprobs: stored.choices[0].logprobs,
    });
    const acc = new StreamAccumulator('m');
    for (const f of frames) acc.add(f);
    expect(acc.completion().choices).toEqual(stored.choices);
  });

  it('leaves logprobs null and keeps no refusal when the stream had none', () => {
    const acc = new StreamAccumulator('m');
    acc.add({ choices: [{ index: 0, delta: { content: 'ok', refusal: '' }, logprobs: null }] });
    expect(acc.completion().choices[0]).toMatchObject({
      message: { role: 'assistant', content: 'ok' },
      logprobs: null,
    });
    expect(acc.completion().choices[0].message).not.toHaveProperty('refusal');
  });

  it('takes usage only when its counts are numbers', () => {
    const acc = new StreamAccumulator('m');
    acc.add({ choices: [{ index: 0, delta: { content: 'ok' } }] });
    acc.add({
      choices: [],
      usage: { prompt_tokens: 'many', completion_tokens: 1, total_tokens: 2 } as never,
    });
    expect(acc.usage).toBeNull();
    expect(acc.empty).toBe(false);
    expect(new StreamAccumulator('m').empty).toBe(true);
  });
});
