import Fastify from 'fastify';
import { Writable } from 'node:stream';
import { sameHiddenClass } from '../../../test/support/hidden-class';
import {
  CompletedRequest,
  installHttpObservability,
  requestIdFrom,
  uuidV7,
} from './http-observability';
import { createLogger } from './logger';
import { annotateRequest } from './request-annotations';

describe('completed requests handed to the request log', () => {
  it('carry the request fields and annotations, in one hidden class for every request', async () => {
    const completed: CompletedRequest[] = [];
    const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
    const app = Fastify();
    installHttpObservability(app, createLogger({ level: 'info' }, discard), (done) =>
      completed.push(done),
    );
    app.post('/v1/chat/completions', async (request) => {
      const n = completed.length;
      annotateRequest(request, { userId: 'user-1', model: `m${n % 3}`, promptTokens: n });
      if (n % 2) annotateRequest(request, { credits: 0.5 });
      return { ok: true };
    });
    await app.ready();
    // Enough requests for V8 to optimise the response hook: a spread keeps one hidden class only
    // until then (test/support/hidden-class.ts).
    for (let i = 0; i < 300; i++)
      await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: {} });
    await app.close();

    expect(completed).toHaveLength(300);
    expect(completed[299]).toMatchObject({
      userId: 'user-1',
      model: 'm2',
      promptTokens: 299,
      credits: 0.5,
      method: 'POST',
      route: '/v1/chat/completions',
      statusCode: 200,
    });
    expect(sameHiddenClass(completed[298], completed[299])).toBe(true);
    expect(sameHiddenClass(completed[0], completed[299])).toBe(true);
  });
});

describe('request ids the gateway makes', () => {
  const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it('are UUIDv7 carrying the time, and sort as text in the order they were made', () => {
    const at = Date.UTC(2026, 10, 23, 12, 0, 0, 123);
    const id = uuidV7(at);
    expect(id).toMatch(V7);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(at);
    const later = [1, 2, 1000, 86_400_000].map((ms) => uuidV7(at + ms));
    expect([id, ...later].sort()).toEqual([id, ...later]);
    const many = new Set(Array.from({ length: 1000 }, () => uuidV7(at)));
    expect(many.size).toBe(1000);
  });

  it('are made only when the caller sent no usable id', () => {
    expect(requestIdFrom({})).toMatch(V7);
    expect(requestIdFrom({ 'x-request-id': 'req-abc-123' })).toBe('req-abc-123');
    expect(requestIdFrom({ 'x-request-id': 'bad id with spaces' })).toMatch(V7);
  });
});
