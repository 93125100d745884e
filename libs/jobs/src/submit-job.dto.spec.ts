import { ApiError } from '@app/observability';
import { decodeCursor, encodeCursor, parseLimit, requireJobId } from './job-cursor';
import { parseClearStuck, parseStatus, parseSubmit } from './submit-job.dto';

function errorOf(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected an ApiError');
}

describe('POST /v1/generations body', () => {
  it('accepts {type, request} with a model', () => {
    const request = { model: 'm', messages: [] };
    expect(parseSubmit({ type: 'chat', request })).toEqual({ type: 'chat', request });
    expect(parseSubmit({ type: 'image', request: { model: 'i', prompt: 'p' } }).type).toBe('image');
  });

  it.each([
    [null, null],
    ['text', null],
    [{ type: 'video', request: { model: 'm' } }, 'type'],
    [{ type: 'chat' }, 'request'],
    [{ type: 'chat', request: [] }, 'request'],
    [{ type: 'chat', request: { messages: [] } }, 'request.model'],
    [{ type: 'chat', request: { model: '' } }, 'request.model'],
    [{ type: 'chat', request: { model: 'm', stream: true } }, 'request.stream'],
  ])('rejects %j with a 400 naming %s', (body, param) => {
    const err = errorOf(() => parseSubmit(body));
    expect(err.status).toBe(400);
    expect(err.param).toBe(param);
  });

  it.each([
    ['nul\u0000', 'request.messages[0].content'],
    ['lone \ud800 high', 'request.messages[0].content'],
    ['lone \udfff low', 'request.messages[0].content'],
    ['\udfff\ud800 reversed pair', 'request.messages[0].content'],
  ])('refuses what jsonb cannot store (%j) before anything is held', (content, param) => {
    const request = { model: 'm', messages: [{ role: 'user', content }] };
    const err = errorOf(() => parseSubmit({ type: 'chat', request }));
    expect(err).toMatchObject({ status: 400, code: 'invalid_value', param });
  });

  it('refuses an unstorable key and keeps well-formed text, pairs and emoji', () => {
    const keyed = { model: 'm', metadata: { 'k\u0000': 1 } };
    expect(errorOf(() => parseSubmit({ type: 'chat', request: keyed })).param).toBe(
      'request.metadata.k\u0000',
    );
    const request = { model: 'm', messages: [{ role: 'user', content: 'ok 💩 \ud83d\udca9 é' }] };
    expect(parseSubmit({ type: 'chat', request }).request).toEqual(request);
  });
});

describe('admin and header inputs', () => {
  it('defaults clear-stuck to the stuck timeout and validates minutes', () => {
    expect(parseClearStuck(undefined, 10)).toBe(10);
    expect(parseClearStuck({}, 10)).toBe(10);
    expect(parseClearStuck({ older_than_minutes: 3 }, 10)).toBe(3);
    for (const bad of [0, -1, 1.5, '5', 600_000])
      expect(errorOf(() => parseClearStuck({ older_than_minutes: bad }, 10)).param).toBe(
        'older_than_minutes',
      );
    expect(errorOf(() => parseClearStuck([1], 10)).status).toBe(400);
  });

  it('takes only known statuses', () => {
    expect(parseStatus(undefined)).toBeUndefined();
    expect(parseStatus('generating')).toBe('generating');
    expect(errorOf(() => parseStatus('running')).param).toBe('status');
  });

  it('round-trips cursors and rejects forged ones', () => {
    const row = {
      createdAt: new Date('2026-01-02T03:04:05.678Z'),
      id: '7d3c9a8e-0000-4000-8000-000000000001',
    };
    expect(decodeCursor(encodeCursor(row))).toEqual(row);
    expect(decodeCursor(undefined)).toBeUndefined();
    expect(errorOf(() => decodeCursor('%%%')).code).toBe('invalid_cursor');
    expect(errorOf(() => decodeCursor(Buffer.from('yesterday|x').toString('base64url'))).code).toBe(
      'invalid_cursor',
    );
    expect(parseLimit(undefined)).toBe(50);
    expect(errorOf(() => parseLimit('0')).param).toBe('limit');
    expect(requireJobId('7D3C9A8E-0000-4000-8000-000000000001')).toBe(
      '7d3c9a8e-0000-4000-8000-000000000001',
    );
    expect(errorOf(() => requireJobId('42')).code).toBe('invalid_id');
  });
});
