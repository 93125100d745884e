import { SseParser, sseDataFrame } from './sse-parser';

describe('SseParser', () => {
  it('splits events across arbitrary chunk boundaries and line endings', () => {
    const text =
      'data: {"a":1}\r\n\r\n: comment\n\nevent: x\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n';
    for (const size of [1, 2, 3, 7, text.length]) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < text.length; i += size)
        events.push(...parser.push(text.slice(i, i + size)));
      events.push(...parser.flush());
      expect(events).toEqual([
        { event: undefined, data: '{"a":1}' },
        { event: 'x', data: 'line1\nline2' },
        { event: undefined, data: '[DONE]' },
      ]);
    }
  });

  it('parses the same events whatever the split, line ending or empty chunks between', () => {
    const lf =
      'data: {"a":1}\n\n\n: ping\n\nevent: e\ndata: x\ndata:y\n\ndata: z\n\n\n\ndata: last';
    const expected = [
      { event: undefined, data: '{"a":1}' },
      { event: 'e', data: 'x\ny' },
      { event: undefined, data: 'z' },
      { event: undefined, data: 'last' },
    ];
    for (const text of [lf, lf.replaceAll('\n', '\r\n'), lf.replaceAll('\n', '\r')]) {
      for (let a = 0; a <= text.length; a++) {
        for (const b of [a, Math.min(text.length, a + 1), Math.min(text.length, a + 3)]) {
          const parser = new SseParser();
          const events = [
            ...parser.push(text.slice(0, a)),
            ...parser.push(''),
            ...parser.push(text.slice(a, b)),
            ...parser.push(text.slice(b)),
            ...parser.flush(),
          ];
          expect({ text, a, b, events }).toEqual({ text, a, b, events: expected });
        }
      }
    }
  });

  it('takes an event sent one character at a time up to its size limit, and refuses a larger one', () => {
    const parser = new SseParser();
    const data = 'x'.repeat(50_000);
    const events = [];
    for (const char of `data: ${data}\n\n`) events.push(...parser.push(char));
    expect(events).toEqual([{ event: undefined, data }]);

    const oversized = new SseParser();
    const megabyte = 'y'.repeat(1024 * 1024);
    expect(() => {
      for (let i = 0; i < 9; i++) oversized.push(megabyte);
    }).toThrow(/oversized stream event/);
  });

  it('decodes multi-byte characters split between chunks', () => {
    const bytes = Buffer.from('data: {"t":"héllo ✓"}\n\n');
    const parser = new SseParser();
    const events = [...parser.push(bytes.subarray(0, 15)), ...parser.push(bytes.subarray(15))];
    expect(events).toEqual([{ event: undefined, data: '{"t":"héllo ✓"}' }]);
  });

  it('returns a last event that lacks its blank line on flush', () => {
    const parser = new SseParser();
    expect(parser.push('data: tail')).toEqual([]);
    expect(parser.flush()).toEqual([{ event: undefined, data: 'tail' }]);
  });

  it('writes an event whose data holds line breaks as one data line per line', () => {
    expect(sseDataFrame('{"a":1}')).toBe('data: {"a":1}\n\n');
    const data = '{"id":"x",\n"created":1,\n\n"choices":[]}';
    const frame = sseDataFrame(data);
    expect(frame).toBe('data: {"id":"x",\ndata: "created":1,\ndata: \ndata: "choices":[]}\n\n');
    const parser = new SseParser();
    expect(parser.push(frame)).toEqual([{ event: undefined, data }]);
  });
});
