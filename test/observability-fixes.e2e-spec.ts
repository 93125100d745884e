import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { RequestLogWriter } from '@app/database';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, writeProvidersFile } from './support/mock-upstream';
import { call, chatJob, FAST_QUEUE, providersFile, waitFor, waitForStatus } from './jobs-helpers';

/**
 * What the runbook's queries and log searches rely on: request_logs.provider names the provider
 * a failed request went to (HighErrorRate, CircuitBreakerOpen), and every log line of a job run
 * carries the submit's request_id and the job_id (Async jobs and the queue).
 */

function rid(label: string): string {
  return `obs-${label}-${randomBytes(4).toString('hex')}`;
}

type LogLine = Record<string, unknown>;

function parsedLogs(gw: TestGateway): LogLine[] {
  return gw.logs.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

describe('request_logs.provider of failed generations', () => {
  const first = new MockUpstream('p-first');
  const second = new MockUpstream('p-second');
  let gw: TestGateway;
  let pg: Client;
  let consumer: TestConsumer;
  let admin: string;

  beforeAll(async () => {
    await first.start();
    await second.start();
    const file = writeProvidersFile(`
providers:
  - { name: p-first, kind: openai, base_url: "${first.url}", priority: 1, models: [obs-gpt, obs-img], timeout_ms: 5000 }
  - { name: p-second, kind: openai, base_url: "${second.url}", priority: 2, models: [obs-gpt], timeout_ms: 5000 }
`);
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        // No breaker opens by itself here: the tests open them on purpose.
        CB_FAILURE_THRESHOLD: '1000',
        UPSTREAM_RETRY_BACKOFF_MS: '0',
      },
    });
    pg = new Client({ connectionString: gw.databaseUrl });
    await pg.connect();
    consumer = await newConsumer(gw, { credits: 100_000 });
    admin = (await adminToken(gw)).token;
  });
  afterAll(async () => {
    await pg?.end();
    await gw?.close();
    await first.stop();
    await second.stop();
  });
  beforeEach(async () => {
    first.reset();
    second.reset();
    for (const name of ['p-first', 'p-second'])
      expect((await call(gw, 'POST', `/admin/circuit-breakers/${name}/reset`, admin)).status).toBe(
        200,
      );
  });

  async function logRow(requestId: string) {
    await gw.gateway.app.get(RequestLogWriter).flush();
    const { rows } = await pg.query(
      `SELECT status_code, error, provider FROM request_logs WHERE request_id = $1`,
      [requestId],
    );
    expect(rows).toHaveLength(1);
    return rows[0] as { status_code: number; error: string | null; provider: string | null };
  }

  async function chat(requestId: string, body: Record<string, unknown>, key = consumer.key) {
    return call(gw, 'POST', '/v1/chat/completions', key, body, { 'x-request-id': requestId });
  }

  const hello = { model: 'obs-gpt', messages: [{ role: 'user', content: 'hello' }] };

  it('a 502 upstream_error after fallback records the last provider tried', async () => {
    first.always({ mode: 'status', status: 500 });
    second.always({ mode: 'status', status: 500 });
    const id = rid('fallback');
    const res = await chat(id, hello);
    expect({ status: res.status, code: res.body.error?.code }).toEqual({
      status: 502,
      code: 'upstream_error',
    });
    expect({ first: first.count, second: second.count }).toEqual({ first: 1, second: 1 });
    expect(await logRow(id)).toEqual({
      status_code: 502,
      error: 'upstream_error',
      provider: 'p-second',
    });
  });

  it('a streaming request that fails before its first event records the provider too', async () => {
    first.always({ mode: 'status', status: 500 });
    second.always({ mode: 'status', status: 503 });
    const id = rid('stream');
    const res = await chat(id, { ...hello, stream: true });
    expect(res.status).toBe(502);
    expect(await logRow(id)).toMatchObject({ status_code: 502, provider: 'p-second' });
  });

  it('an image generation that fails records its provider', async () => {
    first.always({ mode: 'status', status: 500 });
    const id = rid('images');
    const res = await call(
      gw,
      'POST',
      '/v1/images/generations',
      consumer.key,
      { model: 'obs-img', prompt: 'a lighthouse', n: 1 },
      { 'x-request-id': id },
    );
    expect(res.status).toBe(502);
    expect(await logRow(id)).toMatchObject({ status_code: 502, provider: 'p-first' });
  });

  it('blames the provider that failed, not a later one skipped for its open breaker', async () => {
    const forced = await call(gw, 'POST', '/admin/circuit-breakers/p-second/force-open', admin, {
      durationMs: 60_000,
    });
    expect(forced.status).toBe(200);
    first.always({ mode: 'status', status: 500 });
    const id = rid('skip-after');
    expect((await chat(id, hello)).status).toBe(502);
    expect(second.count).toBe(0);
    expect(await logRow(id)).toMatchObject({ status_code: 502, provider: 'p-first' });
  });

  it('a 503 circuit_open with every breaker open records the first provider refused', async () => {
    for (const name of ['p-first', 'p-second']) {
      const forced = await call(gw, 'POST', `/admin/circuit-breakers/${name}/force-open`, admin, {
        durationMs: 60_000,
      });
      expect(forced.status).toBe(200);
    }
    const id = rid('open');
    const res = await chat(id, hello);
    expect({ status: res.status, code: res.body.error?.code }).toEqual({
      status: 503,
      code: 'circuit_open',
    });
    expect(first.count + second.count).toBe(0);
    expect(await logRow(id)).toEqual({
      status_code: 503,
      error: 'circuit_open',
      provider: 'p-first',
    });
  });

  it('requests refused before routing (auth, validation, unknown model) keep a NULL provider', async () => {
    const unauthenticated = rid('auth');
    expect((await chat(unauthenticated, hello, 'sk-sy-not-a-real-key-0123456789')).status).toBe(
      401,
    );
    const invalid = rid('invalid');
    expect((await chat(invalid, { model: 'obs-gpt' })).status).toBe(400);
    const unknown = rid('unknown');
    expect((await chat(unknown, { ...hello, model: 'obs-nowhere' })).status).toBe(404);
    for (const id of [unauthenticated, invalid, unknown])
      expect((await logRow(id)).provider).toBeNull();
    expect(first.count + second.count).toBe(0);
  });
});

describe('log lines of a job run', () => {
  const upstream = new MockUpstream('primary');
  let gw: TestGateway;
  let pg: Client;
  let consumer: TestConsumer;
  let admin: string;

  beforeAll(async () => {
    await upstream.start();
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: providersFile(upstream.url),
        UPSTREAM_RETRY_BACKOFF_MS: '0',
        ...FAST_QUEUE,
      },
    });
    pg = new Client({ connectionString: gw.databaseUrl });
    await pg.connect();
    consumer = await newConsumer(gw, { credits: 1000 });
    admin = (await adminToken(gw)).token;
  });
  afterAll(async () => {
    await pg?.end();
    await gw?.close();
    await upstream.stop();
  });
  beforeEach(() => upstream.reset());

  async function submit(requestId: string): Promise<string> {
    const res = await call(gw, 'POST', '/v1/generations', consumer.key, chatJob(), {
      'x-request-id': requestId,
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('x-request-id')).toBe(requestId);
    return res.body.id as string;
  }

  /** Every line about the job: by its job_id, or by the submit's request_id (not the submit's own access line). */
  function jobLines(jobId: string, requestId: string): LogLine[] {
    return parsedLogs(gw).filter(
      (l) =>
        l.job_id === jobId ||
        l.request_id === jobId ||
        (l.request_id === requestId && l.msg !== 'request completed'),
    );
  }

  function expectCorrelated(lines: LogLine[], jobId: string, requestId: string): void {
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines)
      expect({ msg: line.msg, request_id: line.request_id, job_id: line.job_id }).toEqual({
        msg: line.msg,
        request_id: requestId,
        job_id: jobId,
      });
  }

  it('a succeeded job: its final line carries the submit request_id and the job_id', async () => {
    const requestId = rid('job-ok');
    const id = await submit(requestId);
    await waitForStatus(gw, consumer.key, id, ['succeeded']);
    const lines = await waitFor(() => {
      const found = jobLines(id, requestId);
      return found.some((l) => l.msg === 'generation job succeeded') && found;
    });
    expectCorrelated(lines, id, requestId);
  });

  it('a failed job: the upstream attempt line and the final line carry the submit request_id and the job_id', async () => {
    upstream.always({ mode: 'status', status: 500 });
    const requestId = rid('job-fail');
    const id = await submit(requestId);
    await waitForStatus(gw, consumer.key, id, ['failed']);
    const lines = await waitFor(() => {
      const found = jobLines(id, requestId);
      return found.some((l) => l.msg === 'generation job failed') && found;
    });
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^upstream attempt failed/),
        'generation job failed',
      ]),
    );
    expectCorrelated(lines, id, requestId);
  });

  it('a job cleared as stuck ends with a documented "generation job failed" line, correlated', async () => {
    // Running long enough to be cleared while its worker still holds it.
    upstream.always({ mode: 'ok', delayMs: 2500 });
    const requestId = rid('job-stuck');
    const id = await submit(requestId);
    await waitForStatus(gw, consumer.key, id, ['generating']);
    await pg.query(
      `UPDATE generation_jobs SET created_at = now() - interval '20 minutes' WHERE id = $1`,
      [id],
    );
    const cleared = await call(gw, 'POST', '/admin/jobs/clear-stuck', admin, {
      older_than_minutes: 10,
    });
    expect(cleared.body.ids).toEqual([id]);
    // The worker's own answer comes later and is discarded: that line is part of the run too.
    const lines = await waitFor(() => {
      const found = jobLines(id, requestId);
      return found.some((l) => String(l.msg).includes('result discarded')) && found;
    });
    const final = lines.filter((l) => String(l.msg).startsWith('generation job '));
    expect(final.map((l) => [l.msg, l.outcome, l.error])).toEqual(
      expect.arrayContaining([['generation job failed', 'stuck', 'stuck job cleared by admin']]),
    );
    expect(lines.map((l) => l.msg)).not.toContain('generation job stuck');
    expectCorrelated(lines, id, requestId);
  });
});
