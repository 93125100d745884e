import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A real OpenAI-compatible HTTP upstream for tests, scriptable per request:
 *   ok        answer (JSON, or SSE in `chunks` pieces `chunkDelayMs` apart when stream: true)
 *   status    answer `status` with an OpenAI error body (500, 429 + Retry-After, 401, 400…)
 *   hang      accept the request and never answer (timeouts)
 *   reset     destroy the connection without answering
 *   malformed 200 with a body that is not JSON (or a stream event that is not JSON)
 *   cut       stream: send `afterChunks` content chunks, then destroy the connection;
 *             non-stream: send half of the JSON, then destroy
 *   raw       200 with exactly `body` as `contentType` (default: text/event-stream for a stream
 *             request, else application/json): shapes the other modes never send
 * `delayMs` delays the start of any answer (slow upstream). Requests are counted and recorded,
 * including whether the client aborted before the answer finished.
 */
export type Behaviour =
  | {
      mode: 'ok';
      content?: string;
      chunks?: number;
      chunkDelayMs?: number;
      delayMs?: number;
      usage?: Usage;
      /** Stream: after this many content chunks, wait for `release()` before sending the rest. */
      holdAfter?: number;
    }
  | { mode: 'status'; status: number; message?: string; retryAfter?: number; delayMs?: number }
  | { mode: 'hang' }
  | { mode: 'reset'; delayMs?: number }
  | { mode: 'malformed'; delayMs?: number }
  | { mode: 'cut'; afterChunks?: number; chunkDelayMs?: number; delayMs?: number }
  | { mode: 'raw'; body: string; contentType?: string; delayMs?: number };

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  /** The client closed the connection before the answer was complete. */
  aborted: boolean;
  finished: boolean;
}

const DEFAULT_USAGE: Usage = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 };

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class MockUpstream {
  readonly requests: RecordedRequest[] = [];
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private queue: Behaviour[] = [];
  private fallback: Behaviour = { mode: 'ok' };
  private port = 0;
  private waiters: (() => void)[] = [];
  private gate = deferred();

  constructor(readonly name = 'upstream') {}

  /** Base URL to put in a provider's base_url. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  get count(): number {
    return this.requests.length;
  }

  get aborted(): number {
    return this.requests.filter((r) => r.aborted).length;
  }

  /** Behaviour for every request not scripted with `next`. */
  always(behaviour: Behaviour): this {
    this.fallback = behaviour;
    return this;
  }

  /** Behaviours for the next requests, in order. */
  next(...behaviours: Behaviour[]): this {
    this.queue.push(...behaviours);
    return this;
  }

  /** Lets held streams (`holdAfter`) continue. */
  release(): void {
    this.gate.resolve();
    this.gate = deferred();
  }

  reset(): this {
    this.queue = [];
    this.fallback = { mode: 'ok' };
    this.requests.length = 0;
    return this;
  }

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  /** Resolves when `predicate` holds, checked on every request event. */
  async waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline)
        throw new Error(`${this.name}: condition not met in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      body = {};
    }
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
      body,
      aborted: false,
      finished: false,
    };
    this.requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
      record.finished = true;
      this.notify();
    });
    this.notify();
    const behaviour = this.queue.shift() ?? this.fallback;
    if ('delayMs' in behaviour && behaviour.delayMs) await sleep(behaviour.delayMs);
    if (res.destroyed) return;
    const stream = body.stream === true;
    const isImages = record.path.endsWith('/images/generations');
    switch (behaviour.mode) {
      case 'hang':
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'status': {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (behaviour.retryAfter !== undefined)
          headers['retry-after'] = String(behaviour.retryAfter);
        res.writeHead(behaviour.status, headers);
        res.end(
          JSON.stringify({
            error: {
              message: behaviour.message ?? `mock upstream error ${behaviour.status}`,
              type: behaviour.status === 400 ? 'invalid_request_error' : 'server_error',
              code: behaviour.status === 401 ? 'invalid_api_key' : null,
              param: null,
            },
          }),
        );
        return;
      }
      case 'malformed':
        if (stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.end('data: {not json\n\n');
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"id": "chatcmpl-broken", "choices": [');
        }
        return;
      case 'raw':
        res.writeHead(200, {
          'content-type':
            behaviour.contentType ?? (stream ? 'text/event-stream' : 'application/json'),
        });
        res.end(behaviour.body);
        return;
      case 'cut':
        if (stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          const pieces = splitContent('this stream will be cut short by the upstream', 10);
          const n = behaviour.afterChunks ?? 2;
          res.write(
            sse(
              chunk(body, [
                { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null },
              ]),
            ),
          );
          for (let i = 0; i < n && i < pieces.length; i++) {
            if (behaviour.chunkDelayMs) await sleep(behaviour.chunkDelayMs);
            res.write(
              sse(chunk(body, [{ index: 0, delta: { content: pieces[i] }, finish_reason: null }])),
            );
          }
          await sleep(20);
          req.socket.destroy();
        } else {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '400' });
          res.write('{"id":"chatcmpl-cut","object":"chat.completion","choices":[{"index":0,');
          await sleep(20);
          req.socket.destroy();
        }
        return;
      case 'ok': {
        if (isImages) {
          const n = Number(body.n ?? 1);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              created: Math.floor(Date.now() / 1000),
              data: Array.from({ length: n }, (_, i) => ({ url: `https://images.test/${i}.png` })),
            }),
          );
          return;
        }
        const content = behaviour.content ?? `hello from ${this.name}`;
        const usage = behaviour.usage ?? DEFAULT_USAGE;
        if (!stream) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              id: `chatcmpl-${this.name}`,
              object: 'chat.completion',
              created: Math.floor(Date.now() / 1000),
              model: body.model,
              choices: [
                {
                  index: 0,
                  message: { role: 'assistant', content },
                  logprobs: null,
                  finish_reason: 'stop',
                },
              ],
              usage,
            }),
          );
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(
          sse(
            chunk(body, [
              { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null },
            ]),
          ),
        );
        const pieces = splitContent(content, behaviour.chunks ?? 4);
        for (const [i, piece] of pieces.entries()) {
          if (i === behaviour.holdAfter) await Promise.race([this.gate.promise, closed(res)]);
          if (behaviour.chunkDelayMs) await sleep(behaviour.chunkDelayMs);
          if (res.destroyed) return;
          await write(
            res,
            sse(chunk(body, [{ index: 0, delta: { content: piece }, finish_reason: null }])),
          );
        }
        res.write(sse(chunk(body, [{ index: 0, delta: {}, finish_reason: 'stop' }])));
        const options = body.stream_options as { include_usage?: boolean } | undefined;
        if (options?.include_usage) res.write(sse(chunk(body, [], usage)));
        res.end('data: [DONE]\n\n');
        return;
      }
    }
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function closed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => (res.destroyed ? resolve() : res.once('close', () => resolve())));
}

/** Writes, waiting for 'drain' (or 'close') on backpressure; leaves no listener behind. */
function write(res: ServerResponse, text: string): Promise<void> {
  return new Promise((resolve) => {
    if (res.write(text)) return resolve();
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

function sse(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

function chunk(body: Record<string, unknown>, choices: unknown[], usage?: Usage) {
  return {
    id: 'chatcmpl-stream',
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: body.model,
    choices,
    ...(usage ? { usage } : {}),
  };
}

/** Splits text into `n` roughly equal pieces that join back to it. */
export function splitContent(content: string, n: number): string[] {
  const size = Math.max(1, Math.ceil(content.length / n));
  const pieces: string[] = [];
  for (let i = 0; i < content.length; i += size) pieces.push(content.slice(i, i + size));
  return pieces;
}

export async function startMockUpstream(name?: string): Promise<MockUpstream> {
  return new MockUpstream(name).start();
}

/**
 * A PROVIDERS_FILE with one OpenAI-compatible provider, `primary`, serving `models` from
 * `upstreamUrl`, priced by `pricing` (YAML flow maps: `{ model: m, per_request: 3 }`).
 */
export function oneProviderFile(upstreamUrl: string, models: string[], pricing: string[] = []) {
  return writeProvidersFile(
    [
      'providers:',
      '  - name: primary',
      '    kind: openai',
      `    base_url: ${upstreamUrl}`,
      '    priority: 1',
      `    models: [${models.join(', ')}]`,
      '    timeout_ms: 5000',
      ...(pricing.length > 0 ? ['pricing:', ...pricing.map((entry) => `  - ${entry}`)] : []),
      '',
    ].join('\n'),
  );
}

/** Writes a PROVIDERS_FILE for a test and returns its path. */
export function writeProvidersFile(yaml: string): string {
  const dir = mkdtempSync(`${tmpdir()}/sy-providers-`);
  const file = `${dir}/providers.yaml`;
  writeFileSync(file, yaml);
  return file;
}
