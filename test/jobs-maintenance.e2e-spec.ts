import { Client } from 'pg';
import { runCli } from '../apps/cli/src/main';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream } from './support/mock-upstream';
import {
  balance,
  call,
  chatJob,
  FAST_QUEUE,
  imageJob,
  IMAGE_COST,
  metric,
  metricsText,
  providersFile,
  waitFor,
  WsClient,
} from './jobs-helpers';

/** Captures what a CLI command prints on stdout. */
async function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  try {
    const code = await runCli(args, env);
    return { code, out };
  } finally {
    spy.mockRestore();
  }
}

function dayName(daysAgo: number): { name: string; from: string; to: string } {
  const d = new Date(Date.now() - daysAgo * 86_400_000);
  const from = d.toISOString().slice(0, 10);
  const to = new Date(Date.parse(from) + 86_400_000).toISOString().slice(0, 10);
  return { name: `request_logs_${from.replace(/-/g, '')}`, from, to };
}

describe('job maintenance: reaper, clear-stuck, retention', () => {
  const upstream = new MockUpstream('primary');
  let gw: TestGateway;
  let pg: Client;
  let consumer: TestConsumer;
  let admin: string;
  let file: string;

  beforeAll(async () => {
    await upstream.start();
    file = providersFile(upstream.url);
    // No workers here: submitted jobs stay pending until something clears them.
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        JOB_WORKER_ENABLED: 'false',
        JOB_REAPER_INTERVAL_SECONDS: '1',
        JOB_STUCK_TIMEOUT_MINUTES: '30',
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

  async function submit(): Promise<string> {
    const res = await call(gw, 'POST', '/v1/generations', consumer.key, imageJob());
    expect(res.status).toBe(202);
    return res.body.id;
  }

  async function age(id: string, minutes: number, status = 'pending'): Promise<void> {
    await pg.query(
      `UPDATE generation_jobs SET created_at = now() - make_interval(mins => $2), status = $3,
         started_at = CASE WHEN $3 = 'generating' THEN now() ELSE started_at END
       WHERE id = $1`,
      [id, minutes, status],
    );
  }

  async function job(id: string) {
    return (await call(gw, 'GET', `/v1/generations/${id}`, consumer.key)).body;
  }

  it('reports the queue without workers and keeps submitted jobs pending', async () => {
    const id = await submit();
    await new Promise((r) => setTimeout(r, 1500));
    expect((await job(id)).status).toBe('pending');
    const health = await call(gw, 'GET', '/health/detailed');
    const queue = health.body.components.find((c: { name: string }) => c.name === 'job queue');
    expect(queue.details).toEqual(expect.objectContaining({ workers: 0, queue: 'running' }));
    expect(queue.details.pending).toBeGreaterThanOrEqual(1);
    await call(gw, 'DELETE', `/v1/generations/${id}`, consumer.key);
  });

  it('POST /admin/jobs/clear-stuck fails and refunds jobs older than the cutoff only', async () => {
    const start = await balance(gw, consumer.key);
    const old = await submit();
    const fresh = await submit();
    expect(await balance(gw, consumer.key)).toBe(start - 2 * IMAGE_COST);
    await age(old, 20);

    const res = await call(gw, 'POST', '/admin/jobs/clear-stuck', admin, {
      older_than_minutes: 10,
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ cleared: 1, older_than_minutes: 10, ids: [old] });
    expect(await job(old)).toMatchObject({ status: 'failed', error: 'stuck job cleared by admin' });
    expect((await job(fresh)).status).toBe('pending');
    expect(await balance(gw, consumer.key)).toBe(start - IMAGE_COST);

    const audit = await pg.query(
      `SELECT actor, details FROM audit_log WHERE action = 'jobs.clear_stuck' ORDER BY created_at DESC LIMIT 1`,
    );
    expect(audit.rows[0].details).toMatchObject({ older_than_minutes: 10, cleared: 1 });

    const listed = await call(gw, 'GET', '/admin/jobs?status=failed', admin);
    expect(listed.body.data.map((j: { id: string }) => j.id)).toContain(old);

    // Running it again clears nothing and refunds nothing twice.
    const again = await call(gw, 'POST', '/admin/jobs/clear-stuck', admin, {
      older_than_minutes: 10,
    });
    expect(again.body.cleared).toBe(0);
    expect(await balance(gw, consumer.key)).toBe(start - IMAGE_COST);
    await call(gw, 'DELETE', `/v1/generations/${fresh}`, consumer.key);
  });

  it('validates clear-stuck and keeps it admin-only', async () => {
    for (const body of [
      { older_than_minutes: 0 },
      { older_than_minutes: 'ten' },
      { older_than_minutes: 1.5 },
      [1],
    ]) {
      const res = await call(gw, 'POST', '/admin/jobs/clear-stuck', admin, body);
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
    }
    expect((await call(gw, 'POST', '/admin/jobs/clear-stuck', consumer.key, {})).status).toBe(401);
    expect((await call(gw, 'POST', '/admin/jobs/clear-stuck', undefined, {})).status).toBe(401);
  });

  it('the reaper fails stuck pending and generating jobs with "stuck job cleared", refunds, and tells the WebSocket', async () => {
    const start = await balance(gw, consumer.key);
    const ws = await WsClient.for(gw, consumer.key).ready();
    const pending = await submit();
    const generating = await submit();
    await age(pending, 45);
    await age(generating, 45, 'generating');

    for (const id of [pending, generating]) {
      const event = await ws.next(
        (m) => m.type === 'job' && m.id === id && m.status === 'failed',
        10_000,
      );
      expect(event.error).toBe('stuck job cleared');
      expect(await job(id)).toMatchObject({
        status: 'failed',
        error: 'stuck job cleared',
        credits_charged: 0,
      });
    }
    expect(await balance(gw, consumer.key)).toBe(start);
    ws.close();
    const text = await metricsText(gw);
    expect(
      metric(text, 'gateway_generation_jobs_total', { type: 'image', outcome: 'stuck' }),
    ).toBeGreaterThanOrEqual(2);
    expect(gw.logText()).toContain('stuck job cleared');
  });

  it('npm run cli -- jobs:clear-stuck clears and refunds from the command line', async () => {
    const start = await balance(gw, consumer.key);
    const id = await submit();
    await age(id, 15);
    const env = {
      DATABASE_URL: gw.databaseUrl,
      PROVIDERS_FILE: file,
      LOG_LEVEL: 'silent',
      NODE_ENV: 'test',
    };
    const { code, out } = await cli(['jobs:clear-stuck', '--older-than-minutes', '10'], env);
    expect(code).toBe(0);
    const printed = JSON.parse(out.find((l) => l.startsWith('{'))!);
    expect(printed).toMatchObject({ cleared: 1, ids: [id] });
    expect((await job(id)).status).toBe('failed');
    expect(await balance(gw, consumer.key)).toBe(start);
    expect((await cli(['jobs:clear-stuck', '--older-than-minutes', 'x'], env)).code).toBe(2);
  });

  it("seed 004's plain SQL clear also ends refunded: the reaper's repair pass closes the credits", async () => {
    const start = await balance(gw, consumer.key);
    const id = await submit();
    await age(id, 20);
    await pg.query(`
      UPDATE generation_jobs
      SET status = 'failed', error_message = 'Stuck job cleared by admin', completed_at = NOW()
      WHERE status IN ('pending', 'generating') AND created_at < NOW() - INTERVAL '10 minutes'`);
    expect(await balance(gw, consumer.key)).toBe(start - IMAGE_COST);
    // The repair pass leaves a just-finished job a minute to close its own credits.
    await pg.query(
      `UPDATE generation_jobs SET completed_at = now() - interval '2 minutes' WHERE id = $1`,
      [id],
    );
    await waitFor(async () => (await balance(gw, consumer.key)) === start, 10_000, 'repair refund');
    const row = await pg.query(`SELECT credits_closed_at FROM generation_jobs WHERE id = $1`, [id]);
    expect(row.rows[0].credits_closed_at).not.toBeNull();
  });

  it('retention drops old request-log partitions, audit rows and finished jobs only', async () => {
    const oldDay = dayName(40);
    const recentDay = dayName(10);
    for (const d of [oldDay, recentDay])
      await pg.query(
        `CREATE TABLE IF NOT EXISTS ${d.name} PARTITION OF request_logs FOR VALUES FROM ('${d.from}') TO ('${d.to}')`,
      );
    await pg.query(
      `INSERT INTO request_logs (request_id, method, route, status_code, latency_ms, created_at)
       VALUES ('old', 'GET', '/x', 200, 1, $1), ('recent', 'GET', '/x', 200, 1, $2)`,
      [`${oldDay.from}T12:00:00Z`, `${recentDay.from}T12:00:00Z`],
    );
    await pg.query(
      `INSERT INTO audit_log (actor, action, created_at) VALUES
         ('test', 'retention.old', now() - interval '400 days'),
         ('test', 'retention.recent', now() - interval '10 days')`,
    );
    const jobs = await pg.query(
      `INSERT INTO generation_jobs (user_id, type, status, input, created_at, completed_at) VALUES
         ($1, 'chat', 'succeeded', '{}', now() - interval '41 days', now() - interval '40 days'),
         ($1, 'chat', 'failed', '{}', now() - interval '11 days', now() - interval '10 days'),
         ($1, 'chat', 'cancelled', '{}', now() - interval '41 days', now() - interval '40 days'),
         ($1, 'chat', 'pending', '{}', now() - interval '41 days', NULL)
       RETURNING id, status`,
      [consumer.userId],
    );
    const oldIds = jobs.rows
      .filter((r) => r.status === 'succeeded' || r.status === 'cancelled')
      .map((r) => r.id);
    const recentId = jobs.rows.find((r) => r.status === 'failed').id;
    const activeId = jobs.rows.find((r) => r.status === 'pending').id;

    const env = {
      DATABASE_URL: gw.databaseUrl,
      PROVIDERS_FILE: file,
      LOG_LEVEL: 'silent',
      NODE_ENV: 'test',
    };
    const { code, out } = await cli(['maintenance:retention'], env);
    expect(code).toBe(0);
    const report = JSON.parse(out.find((l) => l.startsWith('{'))!);
    expect(report.request_log_partitions_dropped).toEqual([oldDay.name]);
    expect(report.audit_rows_deleted).toBe(1);
    expect(report.jobs_deleted).toBe(2);

    const partitions = await pg.query(
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'request_logs'`,
    );
    const names = partitions.rows.map((r) => r.relname);
    expect(names).not.toContain(oldDay.name);
    expect(names).toContain(recentDay.name);
    expect(names).toContain(dayName(0).name);
    const logs = await pg.query(
      `SELECT request_id FROM request_logs WHERE request_id IN ('old', 'recent')`,
    );
    expect(logs.rows.map((r) => r.request_id)).toEqual(['recent']);
    const audit = await pg.query(`SELECT action FROM audit_log WHERE action LIKE 'retention.%'`);
    expect(audit.rows.map((r) => r.action)).toEqual(['retention.recent']);
    // An unfinished job is the reaper's business, never retention's, however old.
    const left = await pg.query(`SELECT id FROM generation_jobs WHERE id = ANY($1::uuid[])`, [
      [...oldIds, recentId, activeId],
    ]);
    expect(left.rows.map((r) => r.id).sort()).toEqual([recentId, activeId].sort());

    // A second run finds nothing more to remove.
    const second = JSON.parse(
      (await cli(['maintenance:retention'], env)).out.find((l) => l.startsWith('{'))!,
    );
    expect(second).toEqual({
      request_log_partitions_dropped: [],
      audit_rows_deleted: 0,
      jobs_deleted: 0,
    });
  });

  it('a chat job submitted here waits for a worker elsewhere (no worker in this process)', async () => {
    const res = await call(gw, 'POST', '/v1/generations', consumer.key, chatJob());
    await new Promise((r) => setTimeout(r, 1200));
    expect((await job(res.body.id)).status).toBe('pending');
    expect(upstream.count).toBe(0);
    await waitFor(
      async () =>
        (await call(gw, 'DELETE', `/v1/generations/${res.body.id}`, consumer.key)).status === 200,
    );
  });
});
