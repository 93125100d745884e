import pino from 'pino';
import { Writable } from 'node:stream';
import Fastify, { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ACCESS_LOG_MESSAGE, AccessLogEntry, createAccessLogWriter } from './access-log';
import { installHttpObservability, requestIdFrom } from './http-observability';
import { createLogger } from './logger';
import { annotateRequest, RequestAnnotations } from './request-annotations';

function sink(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const text = () => chunks.join('');
  const lines = () =>
    text()
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stream, lines, text };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** The line the hand-built writer must match: the same entry through logger.info. */
function writeThroughInfo(logger: Logger, entry: AccessLogEntry): void {
  logger.info(
    {
      request_id: entry.requestId,
      method: entry.method,
      route: entry.route,
      status: entry.status,
      latency_ms: entry.latencyMs,
      ...entry.annotations,
    },
    'request completed',
  );
}

const SECRETS = {
  bearer: 'Bearer sy-abcdefghijklmnopqrstuvwxyz012345',
  skKey: 'sk-live-abcdefghijklmnop1234',
  jwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
};

async function gateway(
  logger: Logger,
  annotations: RequestAnnotations | Record<string, unknown>,
): Promise<FastifyInstance> {
  const app = Fastify({ genReqId: (req) => requestIdFrom(req.headers) });
  installHttpObservability(app, logger);
  app.post('/v1/chat/completions', async (request, reply) => {
    annotateRequest(request, annotations as RequestAnnotations);
    return reply.code(200).send({ ok: true });
  });
  app.get('/health', async () => ({ status: 'ok' }));
  await app.ready();
  return app;
}

describe('access log line ("request completed")', () => {
  it('has the request fields and the allow-listed annotations, as pino would write them', async () => {
    const out = sink();
    const logger = createLogger({ level: 'info' }, out.stream);
    const app = await gateway(logger, {
      userId: 'user-1',
      apiKeyId: 'key-1',
      model: 'gpt-4o-mini',
      provider: 'openai',
      promptTokens: 12,
      completionTokens: 34,
      cached: false,
      credits: 0.25,
      error: undefined,
    });
    await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { 'x-request-id': 'req-abc-123' },
      payload: {},
    });
    await app.inject({ method: 'GET', url: '/health' });
    await app.close();
    await tick();

    const lines = out.lines().filter((l) => l.msg === ACCESS_LOG_MESSAGE);
    expect(lines).toHaveLength(1); // /health is quiet
    const line = lines[0];
    expect(Object.keys(line)).toEqual([
      'level',
      'time',
      'service',
      'request_id',
      'method',
      'route',
      'status',
      'latency_ms',
      'userId',
      'apiKeyId',
      'model',
      'provider',
      'promptTokens',
      'completionTokens',
      'cached',
      'credits',
      'msg',
    ]);
    expect(line).toMatchObject({
      level: 'info',
      service: 'switchyard',
      request_id: 'req-abc-123',
      method: 'POST',
      route: '/v1/chat/completions',
      status: 200,
      userId: 'user-1',
      apiKeyId: 'key-1',
      model: 'gpt-4o-mini',
      provider: 'openai',
      promptTokens: 12,
      completionTokens: 34,
      cached: false,
      credits: 0.25,
      msg: 'request completed',
    });
    expect(typeof line.latency_ms).toBe('number');
    expect(new Date(line.time as string).toISOString()).toBe(line.time);
  });

  it('writes exactly what logger.info would, bindings and level formatting included', async () => {
    const fast = sink();
    const slow = sink();
    const fastLogger = createLogger({ level: 'info' }, fast.stream).child({ role: 'gateway' });
    const slowLogger = createLogger({ level: 'info' }, slow.stream).child({ role: 'gateway' });
    const entry = {
      requestId: 'r-1',
      method: 'GET',
      route: '/v1/models',
      status: 404,
      latencyMs: 1.5,
      annotations: { model: 'm "quoted" \\ \n', cached: true, credits: Infinity, error: 'x' },
    };
    createAccessLogWriter(fastLogger)(entry);
    writeThroughInfo(slowLogger, entry);
    await tick();
    const strip = (text: string) => text.replace(/"time":"[^"]+"/, '"time":"T"');
    expect(strip(fast.text())).toBe(strip(slow.text()));
    expect(fast.text().endsWith('}\n')).toBe(true);
  });

  it("builds the line by hand for the gateway's own logger, not through logger.info", async () => {
    const out = sink();
    const logger = createLogger({ level: 'info' }, out.stream).child({ role: 'gateway' });
    const info = jest.spyOn(logger, 'info');
    createAccessLogWriter(logger)({
      requestId: 'r-2',
      method: 'POST',
      route: '/v1/chat/completions',
      status: 200,
      latencyMs: 2,
      annotations: { model: 'm' },
    });
    await tick();
    expect(info).not.toHaveBeenCalled();
    expect(out.text()).toContain('"request_id":"r-2"');
  });

  it("runs the logger's own log formatter, writing what logger.info would", async () => {
    const fast = sink();
    const slow = sink();
    const formatters = { log: (fields: object) => ({ ...fields, formatted: true }) };
    const fastLogger = pino({ formatters }, fast.stream);
    const slowLogger = pino({ formatters }, slow.stream);
    const info = jest.spyOn(fastLogger, 'info');
    const entry = {
      requestId: 'r-3',
      method: 'GET',
      route: '/v1/models',
      status: 200,
      latencyMs: 1,
      annotations: { model: 'm' },
    };
    createAccessLogWriter(fastLogger)(entry);
    writeThroughInfo(slowLogger, entry);
    await tick();
    expect(info).not.toHaveBeenCalled();
    const strip = (text: string) => text.replace(/"time":\d+/, '"time":0');
    expect(strip(fast.text())).toBe(strip(slow.text()));
    expect(fast.text()).toContain('"formatted":true');
  });

  it('cannot carry a secret from an annotation or a header', async () => {
    const out = sink();
    const logger = createLogger({ level: 'info' }, out.stream);
    const app = await gateway(logger, {
      userId: 'user-1',
      model: `my-model ${SECRETS.skKey}`,
      provider: SECRETS.jwt,
      error: `upstream said: invalid token ${SECRETS.bearer}`,
      // Not allow-listed, or not a primitive of the allowed type: never written.
      apiKey: SECRETS.skKey,
      token: 'plain-token-value-1234',
      headers: { authorization: SECRETS.bearer },
      credits: { secret: 'hidden-credits-object' },
      cached: 'hidden-cached-string',
    });
    await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: {
        authorization: SECRETS.bearer,
        'x-api-key': SECRETS.skKey,
        cookie: 'sso=cookievalue123',
        'x-request-id': 'sk-proj-abcdefghijklmnop', // a key pasted as request id
      },
      payload: { api_key: SECRETS.skKey },
    });
    await app.close();
    await tick();

    const text = out.text();
    for (const leak of [
      'abcdefghijklmnopqrstuvwxyz012345',
      'abcdefghijklmnop1234',
      SECRETS.jwt.slice(0, 30),
      'abcdefghijklmnop',
      'plain-token-value-1234',
      'cookievalue123',
      'hidden-credits-object',
      'hidden-cached-string',
    ])
      expect(text).not.toContain(leak);

    const line = out.lines().find((l) => l.msg === ACCESS_LOG_MESSAGE)!;
    expect(line.model).toBe('my-model [REDACTED]');
    expect(line.provider).toBe('[REDACTED]');
    expect(line.error).toBe('upstream said: invalid token [REDACTED]');
    expect(line.request_id).toMatch(/^[0-9a-f-]{36}$/); // a fresh id instead of the key
    for (const key of ['apiKey', 'token', 'headers', 'credits', 'cached'])
      expect(line).not.toHaveProperty(key);
  });

  it('replaces a key-shaped request id from a custom genReqId whole', async () => {
    const out = sink();
    createAccessLogWriter(createLogger({ level: 'info' }, out.stream))({
      requestId: 'sk-proj-abcdefghijkl',
      method: 'GET',
      route: '/x',
      status: 200,
      latencyMs: 1,
      annotations: {},
    });
    await tick();
    expect(out.lines()[0].request_id).toBe('[REDACTED]');
  });

  it('respects the log level, also when it changes at run time', async () => {
    const out = sink();
    const logger = createLogger({ level: 'warn' }, out.stream);
    const write = createAccessLogWriter(logger);
    const entry = {
      requestId: 'r-1',
      method: 'GET',
      route: '/x',
      status: 200,
      latencyMs: 1,
      annotations: {},
    };
    write(entry);
    logger.level = 'info';
    write({ ...entry, requestId: 'r-2' });
    await tick();
    expect(out.lines().map((l) => l.request_id)).toEqual(['r-2']);
  });

  it('falls back to the regular logger when a hand-built line would skip something', async () => {
    const out = sink();
    const base = createLogger({ level: 'info' }, out.stream);
    const logger = base.child({}, { msgPrefix: '[gw] ' });
    createAccessLogWriter(logger)({
      requestId: 'r-1',
      method: 'GET',
      route: '/x',
      status: 200,
      latencyMs: 1,
      annotations: { model: SECRETS.skKey, apiKey: SECRETS.skKey } as RequestAnnotations,
    });
    await tick();
    const [line] = out.lines();
    expect(line).toMatchObject({ msg: '[gw] request completed', model: '[REDACTED]' });
    expect(line).not.toHaveProperty('apiKey');
  });

  it('falls back to the regular logger when the logger has a mixin, keeping its fields', async () => {
    const out = sink();
    const logger = pino({ mixin: () => ({ region: 'eu-1' }) }, out.stream);
    createAccessLogWriter(logger)({
      requestId: 'r-2',
      method: 'GET',
      route: '/x',
      status: 200,
      latencyMs: 1,
      annotations: {} as RequestAnnotations,
    });
    await tick();
    expect(out.lines()[0]).toMatchObject({ msg: 'request completed', region: 'eu-1' });
  });
});

describe('request ids', () => {
  it('takes ordinary caller ids, refuses key-shaped ones', () => {
    for (const id of ['req-abc-123', 'task-20240101-abcdefgh', 'load-6f1c2d3e-4b5a', 'a.b:c_d'])
      expect(requestIdFrom({ 'x-request-id': id })).toBe(id);
    for (const id of ['sk-proj-abcdefghijkl', 'req-sk-abcdefghijkl', SECRETS.jwt])
      expect(requestIdFrom({ 'x-request-id': id })).not.toBe(id);
    expect(requestIdFrom({ 'x-request-id': SECRETS.skKey, 'x-correlation-id': 'corr-1' })).toBe(
      'corr-1',
    );
  });
});

describe('other log calls are still redacted', () => {
  it('redacts secret paths and scrubs free text', async () => {
    const out = sink();
    const logger = createLogger({ level: 'info' }, out.stream);
    logger.info({ headers: { authorization: SECRETS.bearer }, nested: { token: 'tkn-1234' } }, 'x');
    logger.warn(`upstream echoed ${SECRETS.skKey}`);
    await tick();
    const text = out.text();
    expect(text).not.toContain('abcdefghijklmnopqrstuvwxyz012345');
    expect(text).not.toContain('tkn-1234');
    expect(text).not.toContain('abcdefghijklmnop1234');
    expect(text).toContain('[REDACTED]');
  });
});
