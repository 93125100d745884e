import { startGateway, TestGateway } from './support/gateway';
import { rawRequest, RawReply } from './faults/harness';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
/** RFC 6455 §1.3's example: the Sec-WebSocket-Accept for KEY. */
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

function handshake(headers: Record<string, string | undefined>, method = 'GET'): string {
  const fields: Record<string, string | undefined> = {
    Host: 'gw',
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': KEY,
    ...headers,
  };
  const lines = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}: ${value}\r\n`);
  return `${method} /v1/ws HTTP/1.1\r\n${lines.join('')}\r\n`;
}

/** One handshake on a fresh connection; a socket that upgrades is read for a second. */
function send(gw: TestGateway, request: string): Promise<RawReply> {
  return rawRequest(gw.url, [request], { timeoutMs: 1000 });
}

function header(reply: RawReply, name: string): string | undefined {
  return new RegExp(`^${name}: *(.*)$`, 'im').exec(reply.head)?.[1]?.trim();
}

function expectEnvelope(reply: RawReply, status: number, code: string): void {
  expect(reply.status).toBe(status);
  expect(header(reply, 'content-type')).toMatch(/^application\/json/);
  expect(header(reply, 'connection')).toBe('close');
  expect(Number(header(reply, 'content-length'))).toBe(Buffer.byteLength(reply.body));
  const body = JSON.parse(reply.body);
  expect(Object.keys(body.error).sort()).toEqual([
    'code',
    'message',
    'param',
    'request_id',
    'type',
  ]);
  expect(body.error).toMatchObject({
    message: expect.any(String),
    type: status >= 500 ? 'service_unavailable' : 'invalid_request_error',
    code,
    request_id: header(reply, 'x-request-id'),
  });
}

describe('WebSocket handshake errors on /v1/ws', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('still upgrades a valid handshake, version 13 and 8', async () => {
    for (const version of ['13', '8']) {
      const reply = await send(gw, handshake({ 'Sec-WebSocket-Version': version }));
      expect(reply.status).toBe(101);
      expect(header(reply, 'sec-websocket-accept')).toBe(ACCEPT);
    }
  });

  it('answers a handshake that is not a GET with 405 method_not_allowed', async () => {
    for (const method of ['POST', 'PUT', 'HEAD']) {
      const reply = await send(gw, handshake({ 'Content-Length': '0' }, method));
      expectEnvelope(reply, 405, 'method_not_allowed');
      expect(header(reply, 'allow')).toBe('GET');
    }
  });

  it('answers a missing or malformed Sec-WebSocket-Key with 400 invalid_websocket_key', async () => {
    const keys = [
      undefined,
      '',
      'not-a-key',
      'dGhlIHNhbXBsZSBub25jZQ=',
      'AAAAAAAAAAAAAAAAAAAAAAAA',
    ];
    for (const key of keys) {
      const reply = await send(gw, handshake({ 'Sec-WebSocket-Key': key }));
      expectEnvelope(reply, 400, 'invalid_websocket_key');
      expect(JSON.parse(reply.body).error.param).toBe('sec-websocket-key');
    }
  });

  it('answers a missing or unsupported Sec-WebSocket-Version with 426 and the versions it speaks', async () => {
    for (const version of [undefined, '', '12', '14', 'thirteen']) {
      const reply = await send(gw, handshake({ 'Sec-WebSocket-Version': version }));
      expectEnvelope(reply, 426, 'unsupported_websocket_version');
      expect(header(reply, 'sec-websocket-version')).toBe('13, 8');
      expect(JSON.parse(reply.body).error.param).toBe('sec-websocket-version');
    }
  });

  it('answers a malformed Sec-WebSocket-Protocol with 400 invalid_websocket_handshake', async () => {
    for (const protocol of ['a,,b', 'chat, chat', 'a b']) {
      const reply = await send(gw, handshake({ 'Sec-WebSocket-Protocol': protocol }));
      expectEnvelope(reply, 400, 'invalid_websocket_handshake');
    }
  });

  it('counts every handshake in http_requests_total under /v1/ws, accepted or refused', async () => {
    const count = async (method: string, status: number): Promise<number> => {
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      const series = `http_requests_total{method="${method}",route="/v1/ws",status="${status}"} `;
      const line = text.split('\n').find((l) => l.startsWith(series));
      return line ? Number(line.slice(series.length)) : 0;
    };
    const before = [await count('GET', 101), await count('GET', 426), await count('POST', 405)];
    expect((await send(gw, handshake({}))).status).toBe(101);
    expect((await send(gw, handshake({ 'Sec-WebSocket-Version': '99' }))).status).toBe(426);
    expect((await send(gw, handshake({ 'Content-Length': '0' }, 'POST'))).status).toBe(405);
    const after = [await count('GET', 101), await count('GET', 426), await count('POST', 405)];
    expect(after.map((n, i) => n - before[i])).toEqual([1, 1, 1]);
  });

  it('echoes the caller’s x-request-id in the header and the body', async () => {
    const reply = await send(gw, handshake({ 'Sec-WebSocket-Key': 'bad', 'X-Request-Id': 'ws-1' }));
    expect(header(reply, 'x-request-id')).toBe('ws-1');
    expect(JSON.parse(reply.body).error.request_id).toBe('ws-1');
    expect(gw.logText()).toMatch(/"request_id":"ws-1".*"WebSocket handshake refused"/);
  });
});

describe('WebSocket handshake during shutdown', () => {
  it('answers a valid handshake during the drain with 503 service_unavailable', async () => {
    const gw = await startGateway({ env: { SHUTDOWN_DRAIN_DELAY_MS: '1500' } });
    try {
      const stopping = gw.gateway.shutdown();
      const reply = await send(gw, handshake({}));
      expectEnvelope(reply, 503, 'service_unavailable');
      await stopping;
    } finally {
      await gw.close();
    }
  });
});
