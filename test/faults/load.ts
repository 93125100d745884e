import { randomUUID } from 'node:crypto';

/**
 * A bounded load client for the fault drills: `concurrency` loops, each sending one request at
 * a time with a short pause, picking from a weighted mix of operations (chat, streamed chat,
 * images, async jobs). Every request carries its own x-request-id, so the suite can find it in
 * the ledger and in request_logs afterwards; each outcome is recorded with the phase that was
 * running when it started.
 */

export type Op = 'chat' | 'stream' | 'image' | 'job' | 'pool';

export interface LoadRecord {
  id: string;
  op: Op;
  phase: string;
  status: number; // 0: no HTTP answer at all
  code: string | null; // error.code of an error answer
  ms: number;
  /** Chat/stream: some completion text reached the client. Image: an image. Job: accepted. */
  delivered: boolean;
  /** Stream: ended with data: [DONE]. */
  complete: boolean;
  jobId?: string;
  clientError?: string;
}

export interface LoadOptions {
  url: string;
  key: string;
  concurrency: number;
  pauseMs: number;
  /** Relative weights of the operations. */
  mix: Partial<Record<Op, number>>;
  /** No single request may take longer: the client gives up and records status 0. */
  requestTimeoutMs: number;
}

const BODIES: Record<Op, (i: number) => { path: string; body: Record<string, unknown> }> = {
  chat: (i) => ({
    path: '/v1/chat/completions',
    body: { model: 'load-gpt', messages: [{ role: 'user', content: `chat ${i}` }] },
  }),
  stream: (i) => ({
    path: '/v1/chat/completions',
    body: {
      model: 'load-gpt',
      stream: true,
      messages: [{ role: 'user', content: `stream ${i}` }],
    },
  }),
  image: (i) => ({
    path: '/v1/images/generations',
    body: { model: 'load-image', prompt: `image ${i}`, n: 1 },
  }),
  job: (i) => ({
    path: '/v1/generations',
    body: {
      type: 'chat',
      request: { model: 'load-gpt', messages: [{ role: 'user', content: `job ${i}` }] },
    },
  }),
  pool: (i) => ({
    path: '/v1/chat/completions',
    body: { model: 'pool-gpt', messages: [{ role: 'user', content: `pool ${i}` }] },
  }),
};

/** Deterministic choice sequence (mulberry32), so a failing run can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class LoadClient {
  readonly records: LoadRecord[] = [];
  phase = 'warmup';
  private running = false;
  private loops: Promise<void>[] = [];
  private counter = 0;
  private mix: [Op, number][];

  constructor(
    private readonly options: LoadOptions,
    seed = 1,
  ) {
    this.rand = random(seed);
    this.mix = Object.entries(options.mix) as [Op, number][];
  }

  private readonly rand: () => number;

  setMix(mix: Partial<Record<Op, number>>): void {
    this.mix = Object.entries(mix) as [Op, number][];
  }

  start(): void {
    this.running = true;
    for (let i = 0; i < this.options.concurrency; i++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  inPhase(phase: string): LoadRecord[] {
    return this.records.filter((r) => r.phase === phase);
  }

  private pick(): Op {
    const total = this.mix.reduce((s, [, w]) => s + w, 0);
    let x = this.rand() * total;
    for (const [op, w] of this.mix) {
      x -= w;
      if (x < 0) return op;
    }
    return this.mix[0][0];
  }

  private async loop(): Promise<void> {
    while (this.running) {
      await this.send(this.pick());
      if (this.options.pauseMs > 0) await new Promise((r) => setTimeout(r, this.options.pauseMs));
    }
  }

  /** One request, recorded whatever happens. */
  async send(op: Op, phase = this.phase): Promise<LoadRecord> {
    const i = ++this.counter;
    const id = `load-${randomUUID()}`;
    const { path, body } = BODIES[op](i);
    const record: LoadRecord = {
      id,
      op,
      phase,
      status: 0,
      code: null,
      ms: 0,
      delivered: false,
      complete: false,
    };
    const started = performance.now();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.requestTimeoutMs);
    try {
      const res = await fetch(`${this.options.url}${path}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.options.key}`,
          'content-type': 'application/json',
          'x-request-id': id,
        },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      record.status = res.status;
      const text = await res.text();
      if (res.status >= 400) {
        try {
          record.code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? null;
        } catch {
          record.code = 'not_json';
        }
      } else if (op === 'stream') {
        record.delivered = /"delta":\{[^}]*"content":"[^"]/.test(text);
        record.complete = text.includes('data: [DONE]');
      } else if (op === 'image') {
        record.delivered = text.includes('"data"');
      } else if (op === 'job') {
        record.delivered = res.status === 202;
        record.jobId = (JSON.parse(text) as { id: string }).id;
      } else {
        record.delivered = text.includes('"choices"');
        record.complete = true;
      }
    } catch (err) {
      record.clientError = (err as Error).message;
    } finally {
      clearTimeout(timer);
      record.ms = Math.round(performance.now() - started);
      this.records.push(record);
    }
    return record;
  }
}

/** Counts of statuses (and error codes) in a set of records, for messages and the report. */
export function tally(records: LoadRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) {
    const key = r.status >= 400 ? `${r.status} ${r.code}` : String(r.status);
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
