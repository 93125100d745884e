import { spawnSync } from 'node:child_process';
import { adminToken, newConsumer, TestConsumer } from '../support/auth-factory';
import { startGateway, TestGateway, uniqueRedisPrefix } from '../support/gateway';
import { MockUpstream, startMockUpstream, writeProvidersFile } from '../support/mock-upstream';
import { RedisServer, startRedisServer } from '../support/redis-server';
import { call, heapAfterGc, ledgerProblems, secretsInLogs, sleep, sql, waitUntil } from './harness';
import { LoadClient, LoadRecord, Op, tally } from './load';
import { PgCluster } from './pg-cluster';

/**
 * Fault drills under load (DESIGN §6, §8; runbook "Fault drills"). A bounded load client keeps
 * sending chat, streamed chat, images and async jobs while the suite, in turn, kills and
 * restarts Redis, restarts Postgres (a cluster this suite owns), makes the upstream fail in
 * every way we know (500, 429, hangs, resets, slow trickles, malformed JSON, truncated streams)
 * and fills a provider's sessions with failures. After each phase: the gateway recovered by
 * itself within a bound, clients saw only documented statuses (never a 500, never silence), the
 * ledger is whole. At the end: every request charged exactly once or not at all according to
 * what the client received, request logs complete, heap bounded, no crash, no secret in logs.
 *
 * `npm test` runs a short subset (SY_FAULTS unset); `npm run test:faults` runs every phase for
 * longer with more clients (SY_FAULTS=full).
 */

const FULL = process.env.SY_FAULTS === 'full';
const FAULT_MS = FULL ? 5000 : 1600;
const CONCURRENCY = FULL ? 8 : 4;
const PAUSE_MS = FULL ? 10 : 25;
/** UPSTREAM_DEADLINE_MS below plus room for a stream's trickle and a loaded 2-core machine. */
const LATENCY_BOUND_MS = 12_000;
const RECOVERY_BOUND_MS = 20_000;
const PRICES: Record<Op, number> = { chat: 2, stream: 2, pool: 2, job: 2, image: 5 };
const BASE_MIX: Partial<Record<Op, number>> = { chat: 4, stream: 3, image: 1, job: 1, pool: 1 };

interface Phase {
  name: string;
  subset: boolean;
  /** Statuses clients may see while the fault lasts (200/202 always may). */
  allowed: number[];
  inject(): Promise<void> | void;
  restore(): Promise<void> | void;
  /** Checks while the fault is on, before it is lifted. */
  during?(): Promise<void>;
  /** Extra checks once recovered. */
  after?(records: LoadRecord[]): Promise<void> | void;
}

/** A stream the upstream cut: the client got a 200 whose body ended before `[DONE]`. */
const isCutStream = (r: LoadRecord): boolean =>
  r.op === 'stream' && r.status === 200 && !r.complete;

// The drills kill and restart their own redis-server: without one on the PATH they cannot run.
// Skipped loudly outside CI; under CI=true a missing tool is a failure, never a skip.
const HAS_REDIS_SERVER = spawnSync('sh', ['-c', 'command -v redis-server']).status === 0;
if (!HAS_REDIS_SERVER && process.env.CI !== 'true')
  process.stdout.write('\n[faults] redis-server not on PATH: fault drills SKIPPED\n\n');
const describeDrills = HAS_REDIS_SERVER || process.env.CI === 'true' ? describe : describe.skip;

describeDrills(`fault drills under load (${FULL ? 'full' : 'CI subset'})`, () => {
  let pg: PgCluster;
  let databaseUrl: string;
  let redis: RedisServer;
  let primary: MockUpstream;
  let pooled: MockUpstream;
  let gw: TestGateway;
  let consumer: TestConsumer;
  let admin: string;
  let load: LoadClient;
  let heapBefore = 0;
  const monitor = { live: [] as number[], ready: [] as [string, number][], running: true };
  let monitorLoop: Promise<void> | undefined;
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => crashes.push(err);
  const survived: string[] = [];
  const recoveryMs: Record<string, number> = {};

  const adminGet = (path: string) =>
    call(gw.url, path, { headers: { authorization: `Bearer ${admin}` } });

  beforeAll(async () => {
    process.on('unhandledRejection', onCrash);
    process.on('uncaughtException', onCrash);
    // A real Postgres this suite can stop and start (the shared one is left alone).
    pg = await PgCluster.create();
    databaseUrl = pg.url;
    redis = await startRedisServer();
    primary = await startMockUpstream('faults-primary');
    pooled = await startMockUpstream('faults-pooled');
    const file = writeProvidersFile(`
providers:
  - name: primary
    kind: openai
    base_url: ${primary.url}
    models: [load-gpt, load-image]
    timeout_ms: 1500
  - name: pooled
    kind: openai
    base_url: ${pooled.url}
    session_auth: cookie
    models: [pool-gpt]
    timeout_ms: 1500
pricing:
  - { model: load-gpt, per_request: ${PRICES.chat} }
  - { model: pool-gpt, per_request: ${PRICES.pool} }
  - { model: load-image, per_image: ${PRICES.image} }
`);
    gw = await startGateway({
      databaseUrl,
      redis: redis.url,
      env: {
        PROVIDERS_FILE: file,
        REDIS_KEY_PREFIX: uniqueRedisPrefix(),
        RATE_LIMIT_PER_MINUTE: '1000000',
        RATE_LIMIT_PER_HOUR: '10000000',
        CB_FAILURE_THRESHOLD: '5',
        CB_OPEN_MS: '1500',
        CB_HALF_OPEN_SUCCESSES: '2',
        UPSTREAM_DEADLINE_MS: '4000',
        UPSTREAM_RETRY_BACKOFF_MS: '20',
        DB_CONNECT_TIMEOUT_MS: '1000',
        REQUEST_LOG_BUFFER_MAX: '50000',
        SESSION_HEALTH_CHECK_INTERVAL: '1',
        SESSION_FAILURE_WINDOW: '4',
        SESSION_FAILURE_MIN_SAMPLE: '2',
        SESSION_PROBE_TIMEOUT_MS: '1000',
        JOB_WORKER_CONCURRENCY: '3',
        JOB_POLL_INTERVAL_MS: '500',
        JOB_VISIBILITY_TIMEOUT_SECONDS: '10',
        JOB_MAINTENANCE_INTERVAL_SECONDS: '2',
        CACHE_DEFAULT_TTL: '0',
      },
    });
    consumer = await newConsumer(gw, { credits: 100_000_000 });
    admin = (await adminToken(gw)).token;
    for (const cookie of ['sso=faults-session-one-0001', 'sso=faults-session-two-0002']) {
      const res = await call(gw.url, '/admin/sessions', {
        headers: { authorization: `Bearer ${admin}` },
        body: { cookie_text: cookie, provider: 'pooled' },
      });
      expect(res.status).toBe(201);
    }
    load = new LoadClient(
      {
        url: gw.url,
        key: consumer.key,
        concurrency: CONCURRENCY,
        pauseMs: PAUSE_MS,
        mix: BASE_MIX,
        requestTimeoutMs: 30_000,
      },
      FULL ? 2 : 1,
    );
    // Liveness and readiness, watched all along.
    monitorLoop = (async () => {
      while (monitor.running) {
        const live = await call(gw.url, '/health/live').catch(() => ({ status: 0 }));
        monitor.live.push(live.status);
        const ready = await call(gw.url, '/health/ready').catch(() => ({ status: 0 }));
        monitor.ready.push([load?.phase ?? 'boot', ready.status]);
        await sleep(200);
      }
    })();
    load.start();
    await sleep(FULL ? 3000 : 1500);
    const warm = load.inPhase('warmup');
    expect(warm.length).toBeGreaterThan(10);
    expect(tally(warm)).toEqual({ ...tally(warm.filter((r) => r.status < 300)) });
    heapBefore = heapAfterGc();
  }, 120_000);

  afterAll(async () => {
    monitor.running = false;
    await load?.stop();
    await monitorLoop;
    await gw?.close();
    await primary?.stop();
    await pooled?.stop();
    await redis?.stop();
    await pg?.destroy();
    process.off('unhandledRejection', onCrash);
    process.off('uncaughtException', onCrash);
  });

  /** Until chat, stream, image, job (and the pooled model) all succeed again, and readiness is 200. */
  async function recover(phase: string, ops: Op[]): Promise<number> {
    const started = Date.now();
    await waitUntil(
      async () => {
        if ((await call(gw.url, '/health/ready')).status !== 200) return false;
        for (const op of ops) {
          const r = await load.send(op, `${phase}:recovery`);
          if (r.status >= 300 || (op !== 'job' && !r.delivered)) return false;
        }
        return true;
      },
      RECOVERY_BOUND_MS,
      `${phase}: recovery`,
      200,
    );
    return Date.now() - started;
  }

  const breakerState = async (name: string): Promise<string> =>
    (await adminGet('/admin/circuit-breakers')).json.data.find(
      (b: { name: string }) => b.name === name,
    ).state;

  const upstreamPhase = (
    name: string,
    subset: boolean,
    behaviour: Parameters<MockUpstream['always']>[0],
    allowed: number[],
    extra: Partial<Phase> = {},
  ): Phase => ({
    name,
    subset,
    allowed,
    inject: () => void primary.always(behaviour),
    restore: () => void primary.always({ mode: 'ok' }),
    ...extra,
  });

  const PHASES: Phase[] = [
    {
      name: 'redis-killed',
      subset: true,
      // Limits, cache, breakers and pub/sub fall back to process memory: nobody notices.
      allowed: [],
      inject: () => redis.stop(),
      restore: () => redis.restart(),
      during: async () => {
        await waitUntil(() => gw.logText().includes('FALLBACK ACTIVATED'), 5000, 'fallback logged');
        const detailed = await call(gw.url, '/health/detailed');
        const component = detailed.json.components.find(
          (c: { name: string }) => c.name === 'redis',
        );
        expect(component.status).not.toBe('up');
      },
      after: async () => {
        await waitUntil(
          () => gw.logText().includes('FALLBACK DEACTIVATED'),
          10_000,
          'fallback over',
        );
      },
    },
    {
      name: 'postgres-restarted',
      subset: true,
      // Requests that need the database fail fast with 503; nothing hangs, nothing is free.
      allowed: [503],
      inject: () => pg.stop(),
      restore: async () => {
        await pg.start();
      },
      during: async () => {
        await waitUntil(
          async () => (await call(gw.url, '/health/ready')).status === 503,
          5000,
          'readiness 503',
        );
        expect((await call(gw.url, '/health/live')).status).toBe(200);
      },
      after: (records) => {
        const failed = records.filter((r) => r.status === 503);
        expect(new Set(failed.map((r) => r.code))).toEqual(new Set(['database_unavailable']));
      },
    },
    upstreamPhase('upstream-500', true, { mode: 'status', status: 500 }, [502, 503], {
      during: async () => {
        await waitUntil(
          async () => (await breakerState('primary')) !== 'closed',
          5000,
          'breaker opens',
        );
      },
      after: async () => expect(await breakerState('primary')).toBe('closed'),
    }),
    upstreamPhase(
      'upstream-429',
      false,
      { mode: 'status', status: 429, retryAfter: 1 },
      [502, 503],
    ),
    upstreamPhase('upstream-timeout', true, { mode: 'hang' }, [503, 504]),
    upstreamPhase('upstream-reset', false, { mode: 'reset' }, [502, 503]),
    upstreamPhase(
      'upstream-slow-trickle',
      false,
      { mode: 'ok', delayMs: 700, chunks: 6, chunkDelayMs: 250 },
      [504],
    ),
    upstreamPhase('upstream-malformed', false, { mode: 'malformed' }, [502, 503]),
    upstreamPhase('upstream-truncated', true, { mode: 'cut', afterChunks: 2 }, [502, 503], {
      // Mostly streams, so that cut streams are met before the breaker opens.
      inject: () => {
        load.setMix({ stream: 6, chat: 1, image: 1, job: 1 });
        primary.always({ mode: 'cut', afterChunks: 2 });
      },
      // The breaker may open on non-stream failures before a stream is cut; its half-open
      // probes (every CB_OPEN_MS) then let more streams through, so wait for one to be cut.
      during: async () => {
        await waitUntil(
          async () => load.inPhase('upstream-truncated').some(isCutStream),
          10_000,
          'a cut stream reaches the client',
        );
      },
      restore: () => {
        primary.always({ mode: 'ok' });
        load.setMix(BASE_MIX);
      },
      after: (records) => {
        // Cut streams reach the client as a 200 that ends early; they are billed for what was
        // delivered (checked with the ledger at the end).
        const cut = records.filter(isCutStream);
        expect(cut.length).toBeGreaterThan(0);
      },
    }),
    {
      name: 'sessions-failing',
      subset: true,
      allowed: [502, 503],
      inject: () => {
        load.setMix({ ...BASE_MIX, pool: 4 });
        pooled.always({ mode: 'status', status: 500 });
      },
      restore: () => {
        pooled.always({ mode: 'ok' });
      },
      during: async () => {
        await waitUntil(
          async () =>
            (await adminGet('/admin/sessions')).json.sessions.every(
              (s: { status: string }) => s.status === 'quarantined',
            ),
          8000,
          'every session quarantined',
        );
      },
      after: async (records) => {
        load.setMix(BASE_MIX);
        const sessions = (await adminGet('/admin/sessions')).json.sessions;
        expect(sessions.map((s: { status: string }) => s.status)).toEqual(['healthy', 'healthy']);
        expect(
          records.some((r) => r.code === 'no_healthy_sessions' || r.code === 'circuit_open'),
        ).toBe(true);
      },
    },
  ];

  // SY_FAULTS_PHASES=postgres-restarted,upstream-500 runs only those drills.
  const only = (process.env.SY_FAULTS_PHASES ?? '').split(',').filter(Boolean);
  const phases = PHASES.filter((p) =>
    only.length > 0 ? only.includes(p.name) : FULL ? true : p.subset,
  );

  for (const phase of phases) {
    it(
      `${phase.name}: recovers by itself, documented statuses only, ledger whole`,
      async () => {
        load.phase = phase.name;
        await phase.inject();
        await sleep(FAULT_MS / 2);
        await phase.during?.();
        await sleep(FAULT_MS / 2);
        await phase.restore();
        const took = await recover(phase.name, ['chat', 'stream', 'image', 'job', 'pool']);
        recoveryMs[phase.name] = took;
        expect(took).toBeLessThan(RECOVERY_BOUND_MS);
        load.phase = `${phase.name}:after`;
        await sleep(500);
        const records = load.records.filter(
          (r) => r.phase === phase.name || r.phase === `${phase.name}:recovery`,
        );
        const allowed = new Set([200, 202, ...phase.allowed]);
        const unexpected = records.filter((r) => !allowed.has(r.status));
        expect({ phase: phase.name, unexpected: tally(unexpected) }).toEqual({
          phase: phase.name,
          unexpected: {},
        });
        expect(records.filter((r) => r.code === 'not_json')).toEqual([]);
        expect(Math.max(...records.map((r) => r.ms))).toBeLessThan(LATENCY_BOUND_MS);
        await phase.after?.(records);
        expect(await ledgerProblems(databaseUrl)).toEqual([]);
        survived.push(phase.name);
        process.stdout.write(
          `[faults] ${phase.name}: ${records.length} requests ${JSON.stringify(tally(records))}, recovered in ${took} ms\n`,
        );
      },
      FAULT_MS + RECOVERY_BOUND_MS + 30_000,
    );
  }

  it('after every phase: each request charged once or not at all, logs complete, heap bounded, no crash', async () => {
    load.phase = 'final';
    await sleep(1000);
    await load.stop();
    const records = load.records;
    // Every request got an HTTP answer, never a 500.
    expect(records.filter((r) => r.status === 0).map((r) => r.clientError)).toEqual([]);
    expect(records.filter((r) => r.status >= 500 && r.status < 502)).toEqual([]);

    // Jobs finish (lost attempts are retried after the visibility timeout).
    const jobIds = records.filter((r) => r.jobId).map((r) => r.jobId!);
    await waitUntil(
      async () => {
        const [{ open }] = await sql<{ open: string }>(
          databaseUrl,
          `SELECT count(*)::text AS open FROM generation_jobs
              WHERE id = ANY($1) AND status IN ('pending', 'generating')`,
          [jobIds],
        );
        return Number(open) === 0;
      },
      60_000,
      'every job finished',
      500,
    ).catch(async (err) => {
      const open = await sql(
        databaseUrl,
        `SELECT j.id, j.status, j.attempts, j.created_at, j.started_at, q.state AS queue_state,
                q.retry_count, q.start_after, q.started_on, q.completed_on, q.output
           FROM generation_jobs j LEFT JOIN pgboss.job q ON q.id = j.id
          WHERE j.id = ANY($1) AND j.status IN ('pending', 'generating') LIMIT 5`,
        [jobIds],
      );
      throw new Error(`${(err as Error).message}: ${JSON.stringify(open)}`);
    });
    const jobStatus = new Map(
      (
        await sql<{ id: string; status: string }>(
          databaseUrl,
          'SELECT id, status FROM generation_jobs WHERE id = ANY($1)',
          [jobIds],
        )
      ).map((j) => [j.id, j.status]),
    );

    // What each request should have cost, from what the client received.
    const expected = new Map<string, number>();
    for (const r of records) {
      let charged = false;
      if (r.op === 'job') charged = r.status === 202 && jobStatus.get(r.jobId!) === 'succeeded';
      else charged = r.status === 200 && r.delivered;
      expected.set(r.id, charged ? -PRICES[r.op] : 0);
    }
    const ids = [...expected.keys()];
    // Closes that failed while Postgres was down are retried every few seconds.
    let wrong: string[] = [];
    await waitUntil(
      async () => {
        const nets = new Map(
          (
            await sql<{ request_id: string; net: string }>(
              databaseUrl,
              `SELECT request_id, SUM(amount)::text AS net FROM credit_ledger
                  WHERE request_id = ANY($1) GROUP BY request_id`,
              [ids],
            )
          ).map((row) => [row.request_id, Number(row.net)]),
        );
        wrong = ids
          .filter((id) => (nets.get(id) ?? 0) !== expected.get(id))
          .map((id) => {
            const r = records.find((x) => x.id === id)!;
            return `${r.phase} ${r.op} ${r.status} delivered=${r.delivered} complete=${r.complete} expected ${expected.get(id)} got ${nets.get(id) ?? 0}`;
          });
        return wrong.length === 0;
      },
      20_000,
      'ledger matches what clients received',
      500,
    ).catch(() => undefined);
    expect(wrong).toEqual([]);
    expect(await ledgerProblems(databaseUrl)).toEqual([]);
    const audit = await adminGet('/admin/credits/audit');
    expect(audit.status).toBe(200);

    // Request logs: every request that got an answer is in request_logs, or counted as dropped.
    let missing: string[] = [];
    await waitUntil(
      async () => {
        const found = new Set(
          (
            await sql<{ request_id: string }>(
              databaseUrl,
              'SELECT request_id FROM request_logs WHERE request_id = ANY($1)',
              [ids],
            )
          ).map((row) => row.request_id),
        );
        missing = ids.filter((id) => !found.has(id));
        return missing.length === 0;
      },
      15_000,
      'request logs flushed',
      500,
    ).catch(() => undefined);
    const metrics = (await call(gw.url, '/metrics')).text;
    const dropped = Number(/^gateway_request_logs_dropped_total (\d+)/m.exec(metrics)?.[1] ?? 0);
    expect(missing.length).toBeLessThanOrEqual(dropped);
    expect(missing).toEqual([]);

    // Liveness never failed; readiness failed only while Postgres was down.
    expect(monitor.live.filter((s) => s !== 200)).toEqual([]);
    const notReady = monitor.ready.filter(([, s]) => s !== 200).map(([p]) => p);
    expect(new Set(notReady.filter((p) => !p.startsWith('postgres-restarted')))).toEqual(new Set());

    // Heap: back near where it was after warm-up, with thousands of requests in between.
    const heapAfter = heapAfterGc();
    const growthMb = (heapAfter - heapBefore) / 1e6;
    expect(growthMb).toBeLessThan(64);

    expect(crashes).toEqual([]);
    expect(
      gw.logs.filter((l) => l.includes('"unhandled error"')).map((l) => l.slice(0, 400)),
    ).toEqual([]);
    expect(
      secretsInLogs(gw.logs, [
        consumer.key,
        admin,
        'faults-session-one-0001',
        'faults-session-two-0002',
      ]),
    ).toEqual([]);

    const byOp = tally(records);
    process.stdout.write(
      `[faults] ${records.length} requests (${records.filter((r) => r.status < 300).length} ok) over ${survived.length} phases [${survived.join(', ')}]; ` +
        `statuses ${JSON.stringify(byOp)}; recovery ms ${JSON.stringify(recoveryMs)}; ` +
        `jobs ${jobIds.length}; request logs missing ${missing.length} (dropped ${dropped}); heap growth ${growthMb.toFixed(1)} MB\n`,
    );
  }, 180_000);
});
