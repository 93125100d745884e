/* eslint-disable @typescript-eslint/no-explicit-any */
import WebSocket from 'ws';
import { call } from './support/api-call';
import type { TestGateway } from './support/gateway';
import { writeProvidersFile } from './support/mock-upstream';
import { waitFor } from './support/wait-for';

/** Shared by the test/jobs*.e2e-spec.ts files. */

export const CHAT_MODEL = 'gpt-4o-mini';
export const IMAGE_MODEL = 'dall-e-3';
/** per_request 1 + 11 prompt tokens at 1/1k + 7 completion tokens at 2/1k, rounded up. */
export const CHAT_COST = 2;
export const IMAGE_COST = 40;

export function providersFile(upstreamUrl: string): string {
  return writeProvidersFile(
    [
      'providers:',
      '  - name: primary',
      '    kind: openai',
      `    base_url: ${upstreamUrl}`,
      '    session_auth: none',
      '    priority: 1',
      `    models: [${CHAT_MODEL}, ${IMAGE_MODEL}]`,
      '    timeout_ms: 30000',
      'pricing:',
      `  - { model: ${CHAT_MODEL}, per_request: 1, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 2 }`,
      `  - { model: ${IMAGE_MODEL}, per_image: 40 }`,
      '',
    ].join('\n'),
  );
}

/** Settings that make the queue fast enough for tests (the defaults suit production). */
export const FAST_QUEUE = {
  JOB_POLL_INTERVAL_MS: '500',
  JOB_MAINTENANCE_INTERVAL_SECONDS: '1',
};

export { call };
export { waitFor };
export type { Reply } from './support/api-call';

export function chatJob(content = 'hello') {
  return { type: 'chat', request: { model: CHAT_MODEL, messages: [{ role: 'user', content }] } };
}

export function imageJob(prompt = 'a lighthouse') {
  return { type: 'image', request: { model: IMAGE_MODEL, prompt, n: 1 } };
}

export async function waitForStatus(
  gw: TestGateway,
  key: string,
  id: string,
  statuses: string[],
  timeoutMs = 15_000,
): Promise<any> {
  return waitFor(
    async () => {
      const res = await call(gw, 'GET', `/v1/generations/${id}`, key);
      return statuses.includes(res.body?.status) ? res.body : undefined;
    },
    timeoutMs,
    `job ${id} in ${statuses.join('|')}`,
  );
}

export async function balance(gw: TestGateway, key: string): Promise<number> {
  const res = await call(gw, 'GET', '/v1/credits', key);
  if (res.status !== 200) throw new Error(`GET /v1/credits: ${res.status}`);
  return Number(res.body.balance);
}

/** A WebSocket client that records every message and how the socket closed. */
export class WsClient {
  readonly messages: any[] = [];
  closeCode?: number;
  closeReason?: string;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;
  private readonly ws: WebSocket;

  constructor(url: string, options: { headers?: Record<string, string> } = {}) {
    this.ws = new WebSocket(url, { headers: options.headers });
    this.ws.on('message', (data) => this.messages.push(JSON.parse(data.toString())));
    this.ws.on('error', () => undefined);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`upgrade refused: ${res.statusCode}`)),
      );
    });
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve(code);
      }),
    );
  }

  static for(gw: TestGateway, key?: string, query = ''): WsClient {
    const url = `${gw.url.replace('http', 'ws')}/v1/ws${query}`;
    return new WsClient(url, key ? { headers: { authorization: `Bearer ${key}` } } : {});
  }

  /** Resolves once the server said the socket is authenticated. */
  async ready(): Promise<this> {
    await this.opened;
    await this.next((m) => m.type === 'ready');
    return this;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  jobEvents(id?: string): any[] {
    return this.messages.filter((m) => m.type === 'job' && (id === undefined || m.id === id));
  }

  async next(predicate: (m: any) => boolean, timeoutMs = 15_000): Promise<any> {
    return waitFor(() => this.messages.find(predicate), timeoutMs, 'WebSocket message');
  }

  close(): void {
    this.ws.close();
  }
}

export async function metricsText(gw: TestGateway): Promise<string> {
  return (await fetch(`${gw.url}/metrics`)).text();
}

export function metric(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}
