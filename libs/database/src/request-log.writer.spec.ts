import { keepsOneHiddenClass } from '../../../test/support/hidden-class';
import { RequestLogEntry, requestLogRow } from './request-log.writer';

describe('requestLogRow', () => {
  const entry = (i: number): RequestLogEntry & { extra?: string } => ({
    requestId: `req-${i}`,
    method: 'POST',
    route: '/v1/chat/completions',
    statusCode: 200,
    latencyMs: i,
    model: i % 2 ? 'm1' : undefined,
    extra: 'not a column',
  });

  it('keeps the stored columns, stamps the time, and leaves anything else behind', () => {
    const before = Date.now();
    const row = requestLogRow(entry(1));
    expect(row).toMatchObject({ requestId: 'req-1', statusCode: 200, latencyMs: 1, model: 'm1' });
    expect(row.createdAt!.getTime()).toBeGreaterThanOrEqual(before);
    expect(row).not.toHaveProperty('extra');
    const at = new Date(0);
    expect(requestLogRow({ ...entry(2), createdAt: at }).createdAt).toBe(at);
  });

  it('gives every buffered row one hidden class', () => {
    expect(keepsOneHiddenClass((i) => requestLogRow(entry(i)))).toBe(true);
  });
});
