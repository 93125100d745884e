import { uuidV7 } from '@app/observability';
import type { RequestLogEntry } from './request-log.types';

/** Rows per batch: one INSERT each. */
export const REQUEST_LOG_BATCH_ROWS = 500;

/** The largest value Postgres's `integer` takes (prompt_tokens, completion_tokens). */
const INT4_MAX = 2_147_483_647;

/** Postgres text cannot hold NUL: a client's `model` of "a\u0000b" would fail its whole batch. */
function storableText(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\uFFFD') : text;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** api_key_id and user_id are uuid columns: anything else would fail its whole batch. */
function storableUuid(id: string | null): string | null {
  return id !== null && UUID.test(id) ? id : null;
}

/** The arrays `INSERT … SELECT FROM unnest(…)` takes, in request_logs column order. */
export type RequestLogColumns = [
  requestId: string[],
  apiKeyId: (string | null)[],
  userId: (string | null)[],
  method: string[],
  route: string[],
  model: (string | null)[],
  provider: (string | null)[],
  statusCode: number[],
  latencyMs: number[],
  promptTokens: (number | null)[],
  completionTokens: (number | null)[],
  cached: boolean[],
  credits: number[],
  error: (string | null)[],
  createdAtMs: number[],
  id: string[],
];

/**
 * Up to REQUEST_LOG_BATCH_ROWS rows, a column per field. Rows wait here up to a second, which is
 * several young-generation GCs under load: as objects (an entry, its Date, its latency) each
 * one was copied and promoted, about 250 bytes a request. Here the numbers go into typed
 * arrays outside the heap and only a row's own strings (its request id, an error) outlive the
 * request (docs/performance.md, item 18).
 */
export class RequestLogBatch {
  /** Rows before `start` were dropped (the buffer's bound); the rows held are [start, count). */
  private start = 0;
  private count = 0;
  private readonly requestId: string[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private readonly apiKeyId: (string | null)[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private readonly userId: (string | null)[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private readonly method: string[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private readonly route: string[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private readonly model: (string | null)[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private readonly provider: (string | null)[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private readonly error: (string | null)[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private readonly statusCode = new Uint16Array(REQUEST_LOG_BATCH_ROWS);
  private readonly cached = new Uint8Array(REQUEST_LOG_BATCH_ROWS);
  /** NaN stands for null in the token columns. */
  private readonly promptTokens = new Float64Array(REQUEST_LOG_BATCH_ROWS);
  private readonly completionTokens = new Float64Array(REQUEST_LOG_BATCH_ROWS);
  private readonly latencyMs = new Float64Array(REQUEST_LOG_BATCH_ROWS);
  private readonly credits = new Float64Array(REQUEST_LOG_BATCH_ROWS);
  private readonly createdAtMs = new Float64Array(REQUEST_LOG_BATCH_ROWS);
  /**
   * Row ids, named at a row's first write attempt and kept for the retries: an INSERT whose
   * reply was lost (a frozen or partitioned database) may have committed after all, and its
   * retry must then find those rows instead of writing them twice.
   */
  private readonly id: string[] = new Array(REQUEST_LOG_BATCH_ROWS);
  private named = 0;

  /** Rows held (dropped ones excluded). */
  get size(): number {
    return this.count - this.start;
  }

  get full(): boolean {
    return this.count === REQUEST_LOG_BATCH_ROWS;
  }

  push(e: RequestLogEntry): void {
    const i = this.count++;
    this.requestId[i] = e.requestId;
    this.apiKeyId[i] = e.apiKeyId ?? null;
    this.userId[i] = e.userId ?? null;
    this.method[i] = e.method;
    this.route[i] = e.route;
    this.model[i] = e.model ?? null;
    this.provider[i] = e.provider ?? null;
    this.error[i] = e.error ?? null;
    this.statusCode[i] = e.statusCode;
    this.cached[i] = e.cached ? 1 : 0;
    this.promptTokens[i] = e.promptTokens ?? NaN;
    this.completionTokens[i] = e.completionTokens ?? NaN;
    this.latencyMs[i] = e.latencyMs;
    this.credits[i] = e.credits ?? 0;
    this.createdAtMs[i] = e.createdAt ? e.createdAt.getTime() : Date.now();
  }

  /** Drops up to `n` of the oldest rows; returns how many it dropped. */
  dropOldest(n: number): number {
    const dropped = Math.min(n, this.size);
    // Let the dropped rows' strings go now rather than when the batch is written.
    this.requestId.fill('', this.start, this.start + dropped);
    this.error.fill(null, this.start, this.start + dropped);
    this.start += dropped;
    return dropped;
  }

  /**
   * The rows as the INSERT's array parameters. A value Postgres would refuse (a token count
   * beyond `integer`, a fractional credit, a NUL in text, an id that is not a uuid) is made
   * storable here, because one refused row would hold back every row buffered behind it.
   */
  columns(): RequestLogColumns {
    const from = this.start;
    const to = this.count;
    for (; this.named < to; this.named++)
      this.id[this.named] = uuidV7(this.createdAtMs[this.named]);
    const strings = <T extends string | null>(column: T[]): T[] =>
      column.slice(from, to).map((v) => (v === null ? v : storableText(v)) as T);
    const tokens = (column: Float64Array): (number | null)[] =>
      Array.from(column.subarray(from, to), (v) =>
        v >= 0 && v <= INT4_MAX ? Math.trunc(v) : null,
      );
    return [
      strings(this.requestId),
      this.apiKeyId.slice(from, to).map(storableUuid),
      this.userId.slice(from, to).map(storableUuid),
      strings(this.method),
      strings(this.route),
      strings(this.model),
      strings(this.provider),
      Array.from(this.statusCode.subarray(from, to)),
      Array.from(this.latencyMs.subarray(from, to), (v) => (Number.isFinite(v) ? v : 0)),
      tokens(this.promptTokens),
      tokens(this.completionTokens),
      Array.from(this.cached.subarray(from, to), (v) => v === 1),
      Array.from(this.credits.subarray(from, to), (v) => (Number.isFinite(v) ? Math.round(v) : 0)),
      strings(this.error),
      Array.from(this.createdAtMs.subarray(from, to)),
      this.id.slice(from, to),
    ];
  }
}

/**
 * The rows waiting to be written, oldest first, as batches of at most REQUEST_LOG_BATCH_ROWS.
 * A batch being written is taken out, so new rows go to a new batch; a batch whose write
 * failed goes back to the front.
 */
export class RequestLogBuffer {
  private readonly batches: RequestLogBatch[] = [];
  private rows = 0;

  get size(): number {
    return this.rows;
  }

  push(entry: RequestLogEntry): void {
    let last = this.batches[this.batches.length - 1];
    if (!last || last.full) {
      last = new RequestLogBatch();
      this.batches.push(last);
    }
    last.push(entry);
    this.rows++;
  }

  /** Drops the oldest rows beyond `max`; returns how many it dropped. */
  trimTo(max: number): number {
    let excess = this.rows - max;
    let dropped = 0;
    while (excess > 0 && this.batches.length > 0) {
      const oldest = this.batches[0];
      const n = oldest.dropOldest(excess);
      excess -= n;
      dropped += n;
      if (oldest.size === 0) this.batches.shift();
    }
    this.rows -= dropped;
    return dropped;
  }

  takeOldest(): RequestLogBatch | undefined {
    const batch = this.batches.shift();
    if (batch) this.rows -= batch.size;
    return batch;
  }

  putBack(batch: RequestLogBatch): void {
    this.batches.unshift(batch);
    this.rows += batch.size;
  }
}
