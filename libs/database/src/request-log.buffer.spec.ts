import { REQUEST_LOG_BATCH_ROWS, RequestLogBatch, RequestLogBuffer } from './request-log.buffer';
import type { RequestLogEntry } from './request-log.types';

const entry = (i: number, extra: Partial<RequestLogEntry> = {}): RequestLogEntry => ({
  requestId: `req-${i}`,
  method: 'POST',
  route: '/v1/chat/completions',
  statusCode: 200,
  latencyMs: i + 0.25,
  ...extra,
});

const KEY_ID = '6f1c1c3e-8f55-4e0b-9a43-2f4f0f0f0f01';
const USER_ID = '0b5f6a2e-1c3d-4e5f-8a9b-0c1d2e3f4a5b';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const requestIds = (batch: RequestLogBatch | undefined): string[] => batch!.columns()[0];

describe('RequestLogBatch', () => {
  it('gives back every field in INSERT column order, with nulls where a field is missing', () => {
    const batch = new RequestLogBatch();
    const at = new Date('2026-11-23T10:00:00.123Z');
    batch.push(
      entry(1, {
        apiKeyId: KEY_ID,
        userId: USER_ID,
        model: 'm',
        provider: 'p',
        statusCode: 402,
        promptTokens: 12,
        completionTokens: 0,
        cached: true,
        credits: 7,
        error: 'insufficient_credits',
        createdAt: at,
      }),
    );
    const before = Date.now();
    batch.push(entry(2));
    expect(batch.columns()).toEqual([
      ['req-1', 'req-2'],
      [KEY_ID, null],
      [USER_ID, null],
      ['POST', 'POST'],
      ['/v1/chat/completions', '/v1/chat/completions'],
      ['m', null],
      ['p', null],
      [402, 200],
      [1.25, 2.25],
      [12, null],
      [0, null],
      [true, false],
      [7, 0],
      ['insufficient_credits', null],
      [at.getTime(), expect.any(Number)],
      [expect.stringMatching(UUID_V7), expect.stringMatching(UUID_V7)],
    ]);
    expect(batch.columns()[14][1]).toBeGreaterThanOrEqual(before);
  });

  it('names each row once: a retried batch carries the ids of its first attempt', () => {
    const batch = new RequestLogBatch();
    batch.push(entry(1));
    batch.push(entry(2));
    const first = batch.columns()[15];
    expect(new Set(first).size).toBe(2);
    batch.push(entry(3)); // a row added to a batch put back after a failed write
    const again = batch.columns()[15];
    expect(again.slice(0, 2)).toEqual(first);
    expect(again[2]).toMatch(UUID_V7);
    batch.dropOldest(1);
    expect(batch.columns()[15]).toEqual(again.slice(1));
  });

  it('makes values Postgres would refuse storable, so one row cannot hold back the rest', () => {
    const batch = new RequestLogBatch();
    batch.push(
      entry(1, { promptTokens: 2 ** 40, completionTokens: -1, credits: 2.6, apiKeyId: 'boot-1' }),
    );
    batch.push(entry(2, { latencyMs: NaN, promptTokens: 3.9, model: 'a\u0000b', error: '\u0000' }));
    const columns = batch.columns();
    expect(columns[1]).toEqual([null, null]);
    expect(columns[5]).toEqual([null, 'a\uFFFDb']);
    expect(columns[13]).toEqual([null, '\uFFFD']);
    expect(columns[9]).toEqual([null, 3]);
    expect(columns[10]).toEqual([null, null]);
    expect(columns[12]).toEqual([3, 0]);
    expect(columns[8]).toEqual([1.25, 0]);
  });

  it('drops its oldest rows and reports how many it could drop', () => {
    const batch = new RequestLogBatch();
    for (let i = 0; i < 5; i++) batch.push(entry(i));
    expect(batch.dropOldest(2)).toBe(2);
    expect(batch.size).toBe(3);
    expect(requestIds(batch)).toEqual(['req-2', 'req-3', 'req-4']);
    expect(batch.columns()[8]).toEqual([2.25, 3.25, 4.25]);
    expect(batch.dropOldest(10)).toBe(3);
    expect(batch.size).toBe(0);
  });
});

describe('RequestLogBuffer', () => {
  it('fills batches of REQUEST_LOG_BATCH_ROWS rows, oldest first', () => {
    const buffer = new RequestLogBuffer();
    for (let i = 0; i < REQUEST_LOG_BATCH_ROWS + 3; i++) buffer.push(entry(i));
    expect(buffer.size).toBe(REQUEST_LOG_BATCH_ROWS + 3);
    const first = buffer.takeOldest()!;
    expect(first.size).toBe(REQUEST_LOG_BATCH_ROWS);
    expect(requestIds(first)[0]).toBe('req-0');
    expect(buffer.size).toBe(3);
    expect(requestIds(buffer.takeOldest())).toEqual(['req-500', 'req-501', 'req-502']);
    expect(buffer.takeOldest()).toBeUndefined();
    expect(buffer.size).toBe(0);
  });

  it('starts a new batch for rows recorded while the oldest is being written', () => {
    const buffer = new RequestLogBuffer();
    buffer.push(entry(1));
    const writing = buffer.takeOldest()!;
    buffer.push(entry(2));
    expect(requestIds(writing)).toEqual(['req-1']);
    buffer.putBack(writing); // the write failed: back in front of the newer row
    expect(buffer.size).toBe(2);
    expect(requestIds(buffer.takeOldest())).toEqual(['req-1']);
    expect(requestIds(buffer.takeOldest())).toEqual(['req-2']);
  });

  it('trims to a bound by dropping the oldest rows across batches', () => {
    const buffer = new RequestLogBuffer();
    const total = REQUEST_LOG_BATCH_ROWS * 2 + 10;
    for (let i = 0; i < total; i++) buffer.push(entry(i));
    expect(buffer.trimTo(total)).toBe(0);
    expect(buffer.trimTo(REQUEST_LOG_BATCH_ROWS - 5)).toBe(REQUEST_LOG_BATCH_ROWS + 15);
    expect(buffer.size).toBe(REQUEST_LOG_BATCH_ROWS - 5);
    const oldest = buffer.takeOldest()!;
    expect(requestIds(oldest)[0]).toBe(`req-${REQUEST_LOG_BATCH_ROWS + 15}`);
    expect(oldest.size).toBe(REQUEST_LOG_BATCH_ROWS - 15);
    expect(requestIds(buffer.takeOldest())).toHaveLength(10);
  });
});
