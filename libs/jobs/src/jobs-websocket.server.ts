import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { ApiKeyAuthService } from '@app/auth';
import type { Principal } from '@app/auth';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LifecycleService } from '@app/health';
import {
  ApiError,
  LOGGER,
  rawHttpAnswer,
  recordUpgradeRequest,
  requestIdFrom,
  toEnvelope,
} from '@app/observability';
import { isUuid } from './job-cursor';
import { JobEvents } from './job-events.service';
import { wsConnections } from './jobs.metrics';
import { JobsService } from './jobs.service';
import { JobEvent, JobView } from './jobs.types';

export const WS_PATH = '/v1/ws';

/** Close codes (4000–4999 are the application's). */
export const WS_CLOSE = {
  unauthorized: 4401,
  forbidden: 4403,
  /** More messages waiting for an answer than MAX_QUEUED_TASKS allows: the client floods. */
  tooManyMessages: 4429,
  goingAway: 1001,
  tryAgainLater: 1013,
} as const;

const AUTH_TIMEOUT_MS = 5_000;
const MAX_SUBSCRIPTIONS = 1_000;
const MAX_MESSAGE_BYTES = 16 * 1024;
/** A client this far behind on reading is dropped instead of growing our memory. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/**
 * Work a socket may have waiting (its messages and the events for it, handled one at a time).
 * Room for a client that re-subscribes to every job it may follow (MAX_SUBSCRIPTIONS) at once
 * after a reconnect; past it a client sends faster than it is answered, and its queue
 * (up to MAX_MESSAGE_BYTES a message) would only grow.
 */
const MAX_QUEUED_TASKS = MAX_SUBSCRIPTIONS + 24;

interface Client {
  ws: WebSocket;
  userId?: string;
  apiKeyId?: string;
  /**
   * Checks the socket's key again (revoked, expired, scope removed): the in-process key cache,
   * which every replica drops entries from on a change (pub/sub), so no database round trip.
   */
  recheck?: () => Promise<Principal>;
  subscriptions: Set<string>;
  alive: boolean;
  authTimer?: NodeJS.Timeout;
  /**
   * The end of the socket's work queue. Its messages, and the events for it, run one at a time
   * in the order they came: a subscribe that waits on the database must not let the unsubscribe
   * sent after it (or an event) overtake it.
   */
  tail: Promise<void>;
  queued: number;
}

type ClientMessage =
  | { type: 'auth'; api_key?: unknown }
  | { type: 'subscribe'; job_id?: unknown }
  | { type: 'unsubscribe'; job_id?: unknown }
  | { type: 'ping' };

/**
 * Live job updates at /v1/ws (DESIGN §9). The API key comes in the upgrade's Authorization /
 * X-API-Key header, as `?api_key=` (browsers cannot set headers), or as the first message
 * `{"type":"auth","api_key":"…"}`. Until then the socket hears nothing; a bad or missing key
 * closes it with 4401, and so does a key revoked or expired later (checked before anything is
 * sent, and at each heartbeat). A socket hears about all of its user's jobs, or only the ones it
 * subscribed to; its messages are answered one at a time, in order. Events come from every
 * replica through JobEvents.
 */
@Injectable()
export class JobsWebSocketServer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private wss?: WebSocketServer;
  private readonly byUser = new Map<string, Set<Client>>();
  private readonly all = new Set<Client>();
  private pingTimer?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly adapterHost: HttpAdapterHost,
    private readonly auth: ApiKeyAuthService,
    private readonly events: JobEvents,
    private readonly jobs: JobsService,
    private readonly lifecycle: LifecycleService,
  ) {}

  get connections(): number {
    return this.all.size;
  }

  onApplicationBootstrap(): void {
    const adapter = this.adapterHost.httpAdapter;
    // The worker entry point and the CLI have no HTTP server.
    if (!adapter || !this.config.backgroundTasks) return;
    const server = adapter.getHttpServer() as Server;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
    // With a listener here ws hands us what it refuses instead of answering in plain text.
    // handshakeError() has caught the rest already, so this sees only a malformed
    // Sec-WebSocket-Protocol.
    this.wss.on('wsClientError', (err, socket, request) =>
      this.refuseHandshake(
        request,
        socket,
        ApiError.badRequest(err.message, null, 'invalid_websocket_handshake'),
      ),
    );
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.onUpgrade(server, request, socket, head),
    );
    // Upgraded sockets keep the HTTP server from closing: say goodbye before it drains.
    adapter.getInstance<FastifyInstance>().addHook('preClose', async () => this.closeAll());
    this.events.onEvent((event) => this.deliver(event));
    this.auth.onKeysChanged((ids) => this.recheckKeys(ids));
    this.pingTimer = setInterval(
      () => this.heartbeat(),
      this.config.jobs.wsPingIntervalSeconds * 1000,
    );
    this.pingTimer.unref();
  }

  private onUpgrade(server: Server, request: IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      const url = webSocketUrl(request);
      if (!url || !this.wss) {
        // Node sends every request carrying `Upgrade` here once anyone listens for upgrades: an
        // h2c upgrade (curl --http2, Java's HttpClient on http://) or a stray header on an API
        // call. Those are ordinary HTTP requests that ask for something we do not offer.
        handBackToHttp(server, request, socket, head);
        return;
      }
      this.upgrade(this.wss, request, socket, head, url);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'upgrade request failed');
      socket.destroy();
    }
  }

  private upgrade(
    wss: WebSocketServer,
    request: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    url: URL,
  ): void {
    const refusal = this.lifecycle.isShuttingDown
      ? ApiError.unavailable('The server is shutting down; connect again')
      : handshakeError(request);
    if (refusal) {
      this.refuseHandshake(request, socket, refusal);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      recordUpgradeRequest(request.method ?? 'GET', WS_PATH, 101);
      this.onConnection(ws, request, url);
    });
  }

  /**
   * Answers a handshake that cannot become a WebSocket in the error envelope, like any other
   * failed request, and closes the connection. Fastify never sees upgrade requests, so the
   * request id and the log line are made here.
   */
  private refuseHandshake(request: IncomingMessage, socket: Duplex, error: ApiError): void {
    const requestId = requestIdFrom(request.headers);
    const { status, body, headers } = toEnvelope(error);
    body.error.request_id = requestId;
    // Node stops watching a socket it hands to 'upgrade': an error nobody hears (a client reset)
    // would crash the process, and a client that never hangs up would hold the socket for ever.
    socket.on('error', () => socket.destroy());
    socket.once('finish', () => socket.destroy());
    socket.end(
      rawHttpAnswer(status, JSON.stringify(body), { ...headers, 'x-request-id': requestId }),
    );
    recordUpgradeRequest(request.method ?? 'GET', WS_PATH, status);
    this.logger.info(
      { request_id: requestId, status, code: error.code },
      'WebSocket handshake refused',
    );
  }

  private onConnection(ws: WebSocket, request: IncomingMessage, url: URL): void {
    const client: Client = {
      ws,
      subscriptions: new Set(),
      alive: true,
      tail: Promise.resolve(),
      queued: 0,
    };
    this.all.add(client);
    ws.on('pong', () => (client.alive = true));
    ws.on('error', () => undefined);
    ws.on('close', () => this.forget(client));
    ws.on('message', (data, isBinary) => {
      const raw = data.toString();
      if (!this.enqueue(client, () => this.onMessage(client, raw, isBinary)))
        this.refuse(client, WS_CLOSE.tooManyMessages, 'too many messages waiting for an answer');
    });

    const headers = request.headers;
    const queryKey = url.searchParams.get('api_key');
    // First in the queue: messages that arrive meanwhile wait for the verdict.
    if (headers.authorization !== undefined || headers['x-api-key'] !== undefined) {
      this.enqueue(client, () =>
        this.authenticate(client, () => this.auth.authenticateHeaders(headers, ['jobs'])),
      );
    } else if (queryKey !== null) {
      this.enqueue(client, () =>
        this.authenticate(client, () => this.auth.authenticateKey(queryKey, ['jobs'])),
      );
    } else {
      client.authTimer = setTimeout(
        () => this.refuse(client, WS_CLOSE.unauthorized, 'unauthorized'),
        AUTH_TIMEOUT_MS,
      );
      client.authTimer.unref();
    }
  }

  /**
   * Appends work to the socket's queue; false (nothing queued) when MAX_QUEUED_TASKS are
   * already waiting. Work for a socket that has closed meanwhile is skipped.
   */
  private enqueue(client: Client, task: () => Promise<void>): boolean {
    if (client.queued >= MAX_QUEUED_TASKS) return false;
    client.queued++;
    client.tail = client.tail.then(async () => {
      try {
        if (client.ws.readyState === WebSocket.OPEN) await task();
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'WebSocket message handling failed');
      } finally {
        client.queued--;
      }
    });
    return true;
  }

  private async authenticate(client: Client, check: () => Promise<Principal>): Promise<void> {
    if (client.authTimer) clearTimeout(client.authTimer);
    client.authTimer = undefined;
    try {
      const principal = await check();
      if (client.ws.readyState !== WebSocket.OPEN) return;
      client.userId = principal.userId;
      client.apiKeyId = principal.apiKeyId;
      client.recheck = check;
      let set = this.byUser.get(principal.userId);
      if (!set) this.byUser.set(principal.userId, (set = new Set()));
      set.add(client);
      wsConnections.inc();
      this.send(client, { type: 'ready' });
    } catch (err) {
      this.refuseForAuth(client, err);
    }
  }

  /**
   * Whether the socket's key still holds (DESIGN §5: a revocation reaches every replica within
   * 1 s); when it does not, the socket is closed as at authentication (4401, or 4403 for a key
   * that lost the `jobs` scope) and must be told nothing more. Called before anything is sent.
   */
  private async keyStillValid(client: Client): Promise<boolean> {
    if (!client.recheck) return false;
    try {
      await client.recheck();
    } catch (err) {
      this.refuseForAuth(client, err);
      return false;
    }
    return client.ws.readyState === WebSocket.OPEN;
  }

  private refuseForAuth(client: Client, err: unknown): void {
    const status = err instanceof ApiError ? err.status : 500;
    if (status === 403) this.refuse(client, WS_CLOSE.forbidden, 'forbidden');
    else if (status === 401) this.refuse(client, WS_CLOSE.unauthorized, 'unauthorized');
    else this.refuse(client, WS_CLOSE.tryAgainLater, 'try again later');
  }

  /** One message, run from the socket's queue (after any authentication in progress). */
  private async onMessage(client: Client, raw: string, isBinary: boolean): Promise<void> {
    let message: ClientMessage | undefined;
    try {
      message = isBinary ? undefined : (JSON.parse(raw) as ClientMessage);
    } catch {
      message = undefined;
    }
    if (!client.userId) {
      // Before authentication the only thing a socket may say is who it is.
      if (message?.type === 'auth' && typeof message.api_key === 'string' && !client.authTimer) {
        this.refuse(client, WS_CLOSE.unauthorized, 'unauthorized');
      } else if (message?.type === 'auth' && typeof message.api_key === 'string') {
        const key = message.api_key;
        await this.authenticate(client, () => this.auth.authenticateKey(key, ['jobs']));
      } else this.refuse(client, WS_CLOSE.unauthorized, 'unauthorized');
      return;
    }
    if (!(await this.keyStillValid(client))) return;
    if (!message || typeof message !== 'object') {
      this.send(client, { type: 'error', code: 'invalid_message', message: 'expected JSON' });
      return;
    }
    switch (message.type) {
      case 'subscribe':
        await this.subscribe(client, message.job_id);
        return;
      case 'unsubscribe':
        if (typeof message.job_id === 'string') client.subscriptions.delete(message.job_id);
        this.send(client, { type: 'unsubscribed', job_id: message.job_id ?? null });
        return;
      case 'ping':
        this.send(client, { type: 'pong' });
        return;
      case 'auth':
        return;
      default:
        this.send(client, {
          type: 'error',
          code: 'unknown_message',
          message: 'expected type subscribe, unsubscribe or ping',
        });
    }
  }

  private async subscribe(client: Client, jobId: unknown): Promise<void> {
    if (!isUuid(jobId)) {
      this.send(client, { type: 'error', code: 'invalid_id', message: 'job_id must be a UUID' });
      return;
    }
    const id = jobId.toLowerCase();
    if (client.subscriptions.size >= MAX_SUBSCRIPTIONS && !client.subscriptions.has(id)) {
      this.send(client, { type: 'error', code: 'too_many_subscriptions', job_id: id });
      return;
    }
    let job: JobView | undefined;
    try {
      job = await this.jobs.findOwn(client.userId!, id);
    } catch {
      this.send(client, { type: 'error', code: 'service_unavailable', job_id: id });
      return;
    }
    // Another user's job is indistinguishable from an unknown one.
    if (!job) {
      this.send(client, { type: 'error', code: 'job_not_found', job_id: id });
      return;
    }
    client.subscriptions.add(id);
    this.send(client, { type: 'subscribed', job_id: id });
    // The current state, so a client that subscribes late does not miss a finished job.
    this.send(
      client,
      jobMessage({ id: job.id, status: job.status, result: job.result, error: job.error }),
    );
  }

  /**
   * Queued behind the socket's messages, so that an event is judged by the subscriptions as
   * the client last set them, and sent only while the socket's key still holds.
   */
  private deliver(event: JobEvent): void {
    const clients = this.byUser.get(event.userId);
    if (!clients) return;
    const message = jobMessage(event);
    for (const client of clients) {
      const queued = this.enqueue(client, async () => {
        if (client.subscriptions.size > 0 && !client.subscriptions.has(event.id)) return;
        if (await this.keyStillValid(client)) this.send(client, message);
      });
      // Its queue is stuck (on the database): a client that reconnects will catch up.
      if (!queued) this.refuse(client, WS_CLOSE.tryAgainLater, 'too far behind');
    }
  }

  private send(client: Client, message: Record<string, unknown>): void {
    const ws = client.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.logger.warn({ user_id: client.userId }, 'WebSocket client too slow; disconnected');
      ws.terminate();
      return;
    }
    ws.send(JSON.stringify(message));
  }

  /** A key changed on some replica: its sockets, idle ones too, learn now whether it still holds. */
  private recheckKeys(apiKeyIds: readonly string[]): void {
    for (const client of this.all) {
      if (!client.apiKeyId || !apiKeyIds.includes(client.apiKeyId)) continue;
      this.enqueue(client, async () => {
        await this.keyStillValid(client);
      });
    }
  }

  private heartbeat(): void {
    for (const client of this.all) {
      if (!client.userId) continue;
      if (!client.alive) {
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
      // Also how an idle socket learns that its key was revoked or has expired.
      this.enqueue(client, async () => {
        if (await this.keyStillValid(client)) this.send(client, { type: 'ping' });
      });
    }
  }

  private refuse(client: Client, code: number, reason: string): void {
    if (client.authTimer) clearTimeout(client.authTimer);
    if (client.ws.readyState === WebSocket.OPEN || client.ws.readyState === WebSocket.CONNECTING)
      client.ws.close(code, reason);
  }

  private forget(client: Client): void {
    if (client.authTimer) clearTimeout(client.authTimer);
    this.all.delete(client);
    if (!client.userId) return;
    const set = this.byUser.get(client.userId);
    if (set?.delete(client)) wsConnections.dec();
    if (set && set.size === 0) this.byUser.delete(client.userId);
  }

  private closeAll(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const client of this.all) {
      client.ws.close(WS_CLOSE.goingAway, 'server shutting down');
      // Do not wait for a slow closing handshake during shutdown.
      setTimeout(() => client.ws.terminate(), 1000).unref();
    }
  }

  beforeApplicationShutdown(): void {
    this.closeAll();
    this.wss?.close();
  }
}

/** The wire shape of a status change: {"type":"job","id","status","result"?,"error"?}. */
function jobMessage(event: {
  id: string;
  status: string;
  result?: unknown;
  error?: string | null;
}): Record<string, unknown> {
  const message: Record<string, unknown> = { type: 'job', id: event.id, status: event.status };
  if (event.status === 'succeeded' && event.result !== undefined && event.result !== null)
    message.result = event.result;
  if (event.error) message.error = event.error;
  return message;
}

/** The URL of a WebSocket handshake for WS_PATH; null for any other upgrade request. */
function webSocketUrl(request: IncomingMessage): URL | null {
  if (request.headers.upgrade?.toLowerCase() !== 'websocket') return null;
  let url: URL;
  try {
    url = new URL(request.url ?? '/', 'http://localhost');
  } catch {
    return null; // a target no URL parser accepts: the HTTP path answers it with its 400
  }
  return url.pathname === WS_PATH ? url : null;
}

/** ws's rule for Sec-WebSocket-Key: a 16-byte nonce in base64. */
const WS_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * What ws's handleUpgrade refuses (node_modules/ws/lib/websocket-server.js), checked before it so
 * the client gets the envelope with the right status: ws's wsClientError hook tells only a
 * message. The Upgrade header was checked by webSocketUrl().
 */
function handshakeError(request: IncomingMessage): ApiError | null {
  if (request.method !== 'GET') {
    const message = 'A WebSocket handshake must be a GET request';
    return new ApiError(405, 'invalid_request_error', 'method_not_allowed', message, null, {
      allow: 'GET',
    });
  }
  const key = request.headers['sec-websocket-key'];
  if (key === undefined || !WS_KEY.test(key)) {
    const message = 'Sec-WebSocket-Key must be a 16-byte nonce in base64';
    return ApiError.badRequest(message, 'sec-websocket-key', 'invalid_websocket_key');
  }
  const version = Number(request.headers['sec-websocket-version']);
  if (version !== 13 && version !== 8) {
    // RFC 6455 §4.4: 426 and the versions we speak (ws itself answers 400 with the same header).
    const message = 'Sec-WebSocket-Version must be 13';
    return new ApiError(
      426,
      'invalid_request_error',
      'unsupported_websocket_version',
      message,
      'sec-websocket-version',
      { 'sec-websocket-version': '13, 8' },
    );
  }
  return null;
}

/** Headers that ask for a protocol switch; a request handed back to HTTP goes without them. */
const UPGRADE_HEADERS = new Set(['upgrade', 'http2-settings']);

/**
 * Gives a socket Node took out of HTTP for an upgrade back to the HTTP server: the request's head
 * is written again without its upgrade headers, put in front of what the socket has not read yet
 * (`head`, the start of any body), and the server parses the connection from there as a new one,
 * with the same limits, routes and error envelopes as every request, and keep-alive as usual.
 * The head is rebuilt from what Node's parser accepted, so nothing it refused gets through.
 */
function handBackToHttp(server: Server, request: IncomingMessage, socket: Duplex, head: Buffer) {
  // Pipelined behind a request whose answer is still on its way: that answer's bookkeeping
  // belongs to the parser Node just dropped, and a new parser's answers would queue behind it
  // for ever. Start the new one once it has gone (the socket holds what follows meanwhile).
  const answering = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (answering && !answering.writableFinished) {
    answering.once('finish', () => handBackToHttp(server, request, socket, head));
    return;
  }
  const lines = [`${request.method} ${request.url} HTTP/${request.httpVersion}`];
  const raw = request.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (UPGRADE_HEADERS.has(name)) continue;
    if (name === 'connection') {
      const kept = raw[i + 1]
        .split(',')
        .map((token) => token.trim())
        .filter((token) => token && !UPGRADE_HEADERS.has(token.toLowerCase()));
      if (kept.length > 0) lines.push(`${raw[i]}: ${kept.join(', ')}`);
      continue;
    }
    lines.push(`${raw[i]}: ${raw[i + 1]}`);
  }
  // Header bytes reached Node as latin1 strings; latin1 writes the same bytes back.
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]));
  server.emit('connection', socket);
}
