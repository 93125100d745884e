import { Client } from 'pg';
import { RequestLogWriter } from '@app/database';
import { createTestDatabase, dropDatabase, startGateway } from './support/gateway';
import { relayDatabase } from './support/tcp-proxy';
import { waitFor } from './support/wait-for';

function entry(i: number) {
  return {
    requestId: `req-${i}`,
    method: 'POST',
    route: '/v1/chat/completions',
    statusCode: 200,
    latencyMs: 1.5,
    model: 'mock-gpt',
    credits: 2,
  };
}

async function countRows(url: string, where = 'true'): Promise<number> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return Number(
      (await client.query(`SELECT count(*)::int AS n FROM request_logs WHERE ${where}`)).rows[0].n,
    );
  } finally {
    await client.end();
  }
}

describe('request logs', () => {
  it('writes buffered rows in batches into the day partition', async () => {
    const gw = await startGateway();
    try {
      const writer = gw.gateway.app.get(RequestLogWriter);
      for (let i = 0; i < 1200; i++) writer.record(entry(i));
      await writer.flush();
      expect(writer.pending).toBe(0);
      expect(await countRows(gw.databaseUrl)).toBe(1200);
      // Time-ordered ids (UUIDv7, migration 1732300014000): appended to the primary key.
      expect(
        await countRows(
          gw.databaseUrl,
          `id::text !~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'`,
        ),
      ).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('stores every column as recorded, whatever characters its strings hold', async () => {
    const gw = await startGateway();
    const awkward = `quote " backslash \\ comma , braces {} NULL \\N tab\tnewline\n émoji 🚦`;
    const at = new Date(Date.now() - 60_000); // today's partition, milliseconds kept
    at.setUTCMilliseconds(123);
    const keyId = '6f1c1c3e-8f55-4e0b-9a43-2f4f0f0f0f01';
    try {
      const writer = gw.gateway.app.get(RequestLogWriter);
      writer.record({
        requestId: awkward,
        apiKeyId: keyId,
        userId: null,
        method: 'POST',
        route: '/v1/chat/completions',
        model: 'NULL',
        provider: '',
        statusCode: 502,
        latencyMs: 12.345,
        promptTokens: 10,
        completionTokens: null,
        cached: true,
        credits: 42,
        error: awkward,
        createdAt: at,
      });
      await writer.flush();
      const client = new Client({ connectionString: gw.databaseUrl });
      await client.connect();
      try {
        const { rows } = await client.query(
          `SELECT request_id, api_key_id, user_id, method, route, model, provider, status_code, latency_ms,
             prompt_tokens, completion_tokens, cached, credits::int AS credits, error, created_at
           FROM request_logs`,
        );
        expect(rows).toEqual([
          {
            request_id: awkward,
            api_key_id: keyId,
            user_id: null,
            method: 'POST',
            route: '/v1/chat/completions',
            model: 'NULL',
            provider: '',
            status_code: 502,
            latency_ms: 12.345,
            prompt_tokens: 10,
            completion_tokens: null,
            cached: true,
            credits: 42,
            error: awkward,
            created_at: at,
          },
        ]);
      } finally {
        await client.end();
      }
    } finally {
      await gw.close();
    }
  });

  it("writes the row of a client's request whose model holds a NUL, and the rows behind it", async () => {
    const key = 'sk-sy-requestlogs-nul-0123456789abcdef';
    const gw = await startGateway({ env: { API_KEYS: key } });
    try {
      const send = (model: string) =>
        fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
        });
      const poisoned = await send('bad\u0000model');
      expect(poisoned.status).toBeGreaterThanOrEqual(400);
      expect(poisoned.status).toBeLessThan(500);
      await send('another-unknown-model');
      const writer = gw.gateway.app.get(RequestLogWriter);
      await writer.flush();
      expect(writer.pending).toBe(0);
      expect(await countRows(gw.databaseUrl, `model = 'bad\uFFFDmodel'`)).toBe(1);
      expect(await countRows(gw.databaseUrl, `model = 'another-unknown-model'`)).toBe(1);
    } finally {
      await gw.close();
    }
  });

  it('keeps rows in a bounded buffer while Postgres is unreachable and writes them when it returns', async () => {
    const dbUrl = await createTestDatabase();
    const { proxy, url: viaProxy } = await relayDatabase(dbUrl);
    const gw = await startGateway({
      databaseUrl: viaProxy,
      env: { REQUEST_LOG_BUFFER_MAX: '100', DB_CONNECT_TIMEOUT_MS: '300' },
    });
    try {
      const writer = gw.gateway.app.get(RequestLogWriter);
      await proxy.cut();
      for (let i = 0; i < 150; i++) writer.record(entry(i));
      await writer.flush();
      expect(writer.pending).toBe(100); // bounded: the 50 oldest were dropped and counted
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(/gateway_request_logs_dropped_total \d+/);
      await proxy.restore();
      const deadline = Date.now() + 15000;
      while (writer.pending > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        await writer.flush();
      }
      expect(writer.pending).toBe(0);
      expect(await countRows(dbUrl, `request_id IN ('req-50', 'req-149')`)).toBe(2);
      expect(await countRows(dbUrl, `request_id = 'req-0'`)).toBe(0);
    } finally {
      await gw.close();
      await proxy.cut();
      await dropDatabase(dbUrl);
    }
  });

  it('writes each row once when the answer to its batch was lost and the batch is retried', async () => {
    const dbUrl = await createTestDatabase();
    const { proxy, url: viaProxy } = await relayDatabase(dbUrl);
    // A reply not back within 1.3 s (statement timeout + 1 s) is given up on.
    const gw = await startGateway({
      databaseUrl: viaProxy,
      env: { DB_STATEMENT_TIMEOUT_MS: '300', DB_CONNECT_TIMEOUT_MS: '300' },
    });
    try {
      const writer = gw.gateway.app.get(RequestLogWriter);
      writer.record(entry(0));
      await writer.flush(); // the day's partitions exist before the replies go
      expect(await countRows(dbUrl)).toBe(1);
      proxy.loseReplies();
      try {
        for (let i = 1; i <= 20; i++) writer.record(entry(i));
        await writer.flush();
        // The INSERT ran and committed; the writer never heard so and keeps the rows.
        expect(await countRows(dbUrl)).toBe(21);
        expect(writer.pending).toBe(20);
      } finally {
        proxy.keepReplies();
      }
      await waitFor(async () => {
        await writer.flush();
        return writer.pending === 0;
      }, 20_000);
      expect(await countRows(dbUrl)).toBe(21);
    } finally {
      await gw.close();
      await proxy.cut();
      await dropDatabase(dbUrl);
    }
  });

  it('drops whole partitions older than the retention', async () => {
    const gw = await startGateway({ env: { REQUEST_LOG_RETENTION_DAYS: '30' } });
    const client = new Client({ connectionString: gw.databaseUrl });
    await client.connect();
    try {
      await client.query(
        `CREATE TABLE request_logs_20200101 PARTITION OF request_logs FOR VALUES FROM ('2020-01-01 00:00+00') TO ('2020-01-02 00:00+00')`,
      );
      await client.query(
        `INSERT INTO request_logs (request_id, method, route, status_code, latency_ms, created_at) VALUES ('old', 'GET', '/x', 200, 1, '2020-01-01 12:00+00')`,
      );
      const dropped = await gw.gateway.app.get(RequestLogWriter).dropExpiredPartitions();
      expect(dropped).toEqual(['request_logs_20200101']);
      const left = await client.query(`SELECT to_regclass('request_logs_20200101') AS t`);
      expect(left.rows[0].t).toBeNull();
      const today = `request_logs_${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`;
      expect((await client.query(`SELECT to_regclass($1) AS t`, [today])).rows[0].t).not.toBeNull();
    } finally {
      await client.end();
      await gw.close();
    }
  });
});
