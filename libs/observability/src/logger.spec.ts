import pino from 'pino';
import { Writable } from 'node:stream';
import { createLogger, PINO_REDACT_PATHS, redactLogFields } from './logger';

function sink(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const { time: _time, ...rest } = JSON.parse(line) as Record<string, unknown>;
        return rest;
      });
  return { stream, lines };
}

const tokenError = Object.assign(new Error('upstream refused'), { token: 'tok-1', code: 'E1' });

/** Structured lines covering every path, where secrets are not, and the awkward values. */
const LINES: Record<string, unknown>[] = [
  { authorization: 'Bearer abc', cookie: 'a=b', password: 'p', api_key: 'k', apiKey: 'k2' },
  { key: 'k', token: 't', access_token: 'at', cookie_text: 'ct', secret: 's', other: 'kept' },
  { headers: { authorization: 'Bearer x', cookie: 'c', 'x-api-key': 'xk', accept: '*/*' } },
  { Authorization: 'Bearer top', 'x-api-key': 'top-key', Cookie: 'top' },
  { req: { headers: { authorization: 'a', cookie: 'c', 'x-api-key': 'k', host: 'h' }, url: '/' } },
  { req: { token: 't', headers: { Authorization: 'A', Cookie: 'C' } } },
  { nested: { Authorization: 'A', Cookie: 'C', password: 'p', deeper: { token: 'not reached' } } },
  {
    creds: {
      api_key: 'a',
      apiKey: 'b',
      key: 'c',
      access_token: 'd',
      cookie_text: 'e',
      secret: 'f',
      token: 'g',
      password: 'h',
      authorization: 'i',
      cookie: 'j',
    },
  },
  { list: [{ token: 'in an array' }], count: 3, ok: true, none: null },
  { token: null, key: undefined, nested: { secret: null, token: undefined } },
  { err: tokenError, request_id: 'r1' },
  { err: { message: 'plain object', key: 'k' } },
  { err: 'just text', api_key: 'k' },
  { error: tokenError },
  { model: 'm', provider: 'p', latency_ms: 12, upstream_status: undefined },
];

describe('log redaction', () => {
  it('censors exactly what pino redact does with the same rule, line for line', () => {
    const ours = sink();
    const reference = sink();
    const logger = createLogger({ level: 'info' }, ours.stream);
    const old = pino(
      {
        level: 'info',
        base: { service: 'switchyard' },
        timestamp: pino.stdTimeFunctions.isoTime,
        messageKey: 'msg',
        redact: { paths: [...PINO_REDACT_PATHS], censor: '[REDACTED]' },
        formatters: { level: (label) => ({ level: label }) },
      },
      reference.stream,
    );
    for (const fields of LINES) {
      logger.info(fields, 'line');
      old.info(fields, 'line');
    }
    logger.child({ token: 'bound', role: 'worker' }).info({ a: 1 }, 'child');
    old.child({ token: 'bound', role: 'worker' }).info({ a: 1 }, 'child');
    logger.child({ role: 'worker' }).child({ secret: 's', n: 2 }).info('grandchild');
    old.child({ role: 'worker' }).child({ secret: 's', n: 2 }).info('grandchild');
    expect(ours.lines()).toEqual(reference.lines());
    expect(JSON.stringify(ours.lines())).toContain('[REDACTED]');
  });

  it('never changes the object it was given', () => {
    const fields = {
      token: 't',
      headers: { authorization: 'a' },
      req: { headers: { cookie: 'c' } },
    };
    const copy = structuredClone(fields);
    const out = redactLogFields(fields);
    expect(fields).toEqual(copy);
    expect(out).toEqual({
      token: '[REDACTED]',
      headers: { authorization: '[REDACTED]' },
      req: { headers: { cookie: '[REDACTED]' } },
    });
  });

  it('censors every secret name at the top of a line and one level down', () => {
    // The rule itself, pinned here: the comparison with pino above derives its paths from it.
    const names = ['authorization', 'Authorization', 'cookie', 'Cookie', 'x-api-key', 'password'];
    names.push('api_key', 'apiKey', 'key', 'token', 'access_token', 'cookie_text', 'secret');
    const fields = Object.fromEntries(names.map((name) => [name, `value of ${name}`]));
    const censored = Object.fromEntries(names.map((name) => [name, '[REDACTED]']));
    expect(redactLogFields({ ...fields, nested: fields, id: 1 })).toEqual({
      ...censored,
      nested: censored,
      id: 1,
    });
  });

  it('censors the header spellings at the top of a line too, which the old paths did not', () => {
    expect(redactLogFields({ Authorization: 'A', 'x-api-key': 'k', Cookie: 'c', id: 1 })).toEqual({
      Authorization: '[REDACTED]',
      'x-api-key': '[REDACTED]',
      Cookie: '[REDACTED]',
      id: 1,
    });
  });

  it('hands back the same object when nothing is secret', () => {
    const fields = { request_id: 'r', nested: { model: 'm' } };
    expect(redactLogFields(fields)).toBe(fields);
  });

  it('censors an object interpolated into the message', () => {
    const out = sink();
    createLogger({ level: 'info' }, out.stream).info('sent %j', { token: 'tok-secret', n: 1 });
    const [line] = out.lines();
    expect(line.msg).toBe('sent {"token":"[REDACTED]","n":1}');
  });
});
