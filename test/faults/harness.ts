import { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Client } from 'pg';
import type { TestGateway } from '../support/gateway';

/**
 * Helpers shared by the reliability suites (faults, bad input, replicas, security): plain HTTP
 * calls that never throw on a status, raw-socket requests for what fetch refuses to send, the
 * error-envelope check, a real GC for memory checks, and the ledger invariant in SQL.
 */

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

export interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A string or Buffer is sent as is (content-type defaults to JSON); anything else is JSON. */
  body?: unknown;
  signal?: AbortSignal;
}

export async function call(base: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | Buffer | undefined;
  if (options.body !== undefined) {
    body =
      typeof options.body === 'string' || Buffer.isBuffer(options.body)
        ? options.body
        : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${base}${path}`, {
    method: options.method ?? (body === undefined ? 'GET' : 'POST'),
    headers,
    body,
    signal: options.signal,
  });
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // SSE or empty
  }
  return { status: res.status, headers: res.headers, text, json };
}

export interface EnvelopeLike {
  error: { message: string; type: string; code: string | null; param: string | null };
}

/** The OpenAI envelope with all four keys (and request_id when the app produced it). */
export function isEnvelope(json: unknown): json is EnvelopeLike {
  if (typeof json !== 'object' || json === null) return false;
  const error = (json as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) return false;
  const e = error as Record<string, unknown>;
  return (
    typeof e.message === 'string' &&
    typeof e.type === 'string' &&
    'code' in e &&
    'param' in e &&
    (e.param === null || typeof e.param === 'string')
  );
}

export interface RawReply {
  status: number;
  head: string;
  body: string;
  /** The server closed the connection without answering. */
  closedWithoutAnswer: boolean;
}

/**
 * Sends bytes on a fresh TCP connection and reads until the server closes or `timeoutMs`. For
 * requests fetch will not send: CR/LF in headers, invalid UTF-8, huge headers, slow senders.
 * `chunks` are written `gapMs` apart (a drip-fed request).
 */
export function rawRequest(
  url: string,
  chunks: (string | Buffer)[],
  { gapMs = 0, timeoutMs = 10_000 }: { gapMs?: number; timeoutMs?: number } = {},
): Promise<RawReply> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const received: Buffer[] = [];
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(received).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = split >= 0 ? text.slice(0, split) : text;
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({
        status: match ? Number(match[1]) : 0,
        head,
        body: split >= 0 ? text.slice(split + 4) : '',
        closedWithoutAnswer: received.length === 0,
      });
    };
    const timer = setTimeout(() => {
      if (received.length === 0) {
        settled = true;
        socket.destroy();
        reject(new Error(`no answer within ${timeoutMs} ms`));
      } else finish();
    }, timeoutMs);
    socket.on('data', (d) => received.push(d));
    socket.on('close', finish);
    socket.on('error', () => finish());
    socket.connect(Number(port), '127.0.0.1', async () => {
      for (const [i, chunk] of chunks.entries()) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (socket.destroyed) return;
        socket.write(chunk);
      }
    });
  });
}

/** The body of a raw HTTP/1.1 reply, de-chunked when it was sent chunked. */
export function rawJson(reply: RawReply): unknown {
  let body = reply.body;
  if (/transfer-encoding:\s*chunked/i.test(reply.head)) {
    let out = '';
    let rest = body;
    for (;;) {
      const eol = rest.indexOf('\r\n');
      if (eol < 0) break;
      const size = parseInt(rest.slice(0, eol), 16);
      if (!size) break;
      out += rest.slice(eol + 2, eol + 2 + size);
      rest = rest.slice(eol + 2 + size + 2);
    }
    body = out;
  }
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

let gcFn: (() => void) | undefined;

/** A real full GC (jest does not run with --expose-gc), then the heap in use. */
export function heapAfterGc(): number {
  if (!gcFn) {
    setFlagsFromString('--expose_gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
  return process.memoryUsage().heapUsed;
}

export interface LedgerProblem {
  user_id: string;
  balance: string;
  ledger_sum: string;
}

/** Users whose balance differs from their ledger sum, or is negative. Empty when all is well. */
export async function ledgerProblems(databaseUrl: string): Promise<LedgerProblem[]> {
  const pg = new Client({ connectionString: databaseUrl });
  await pg.connect();
  try {
    const { rows } = await pg.query<LedgerProblem>(
      `SELECT c.user_id, c.balance::text, COALESCE(l.total, 0)::text AS ledger_sum
         FROM user_credits c
         LEFT JOIN (SELECT user_id, SUM(amount) AS total FROM credit_ledger GROUP BY user_id) l
           ON l.user_id = c.user_id
        WHERE c.balance <> COALESCE(l.total, 0) OR c.balance < 0`,
    );
    return rows;
  } finally {
    await pg.end();
  }
}

export async function sql<T = Record<string, unknown>>(
  databaseUrl: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const pg = new Client({ connectionString: databaseUrl });
  await pg.connect();
  try {
    return (await pg.query(text, params)).rows as T[];
  } finally {
    await pg.end();
  }
}

export async function waitUntil(
  predicate: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what = 'condition',
  everyMs = 100,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await predicate()) return Date.now() - started;
    if (Date.now() - started > timeoutMs)
      throw new Error(`${what}: not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function balanceOf(gw: TestGateway, key: string): Promise<number> {
  const res = await call(gw.url, '/v1/credits', { headers: { authorization: `Bearer ${key}` } });
  if (res.status !== 200) throw new Error(`GET /v1/credits: ${res.status} ${res.text}`);
  return Number(res.json.balance);
}

/**
 * Secret-shaped strings in captured log lines: API keys, bearer tokens, JWTs, session cookies,
 * plus every literal secret the suite handed out. Returns the offending lines (truncated).
 */
export function secretsInLogs(lines: string[], literals: string[]): string[] {
  const patterns = [
    /sk-sy-[A-Za-z0-9]{8,}/,
    /Bearer\s+[A-Za-z0-9._~+/=-]{12,}/i,
    /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}/,
  ];
  const found: string[] = [];
  for (const line of lines) {
    const hit =
      patterns.some((p) => p.test(line)) || literals.some((s) => s.length >= 8 && line.includes(s));
    if (hit) found.push(line.slice(0, 300));
  }
  return found;
}
