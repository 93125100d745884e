import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { ApiKeysService, UsersService } from '@app/auth';
import { CreditsService } from '@app/credits';
import { bash } from './monitoring.helpers';
import { startGateway, TestGateway } from './support/gateway';
import { testEnv } from './support/test-env';

/**
 * docs/runbook.md "Credits and ledger" cannot drift from the code: every command of its sh
 * blocks runs, in order and in one shell (later commands use TOKEN and USER_ID from earlier
 * ones), against a live gateway and its database. `npm run cli --` runs the CLI from source.
 */

const ROOT = path.resolve(__dirname, '..');
const RUNBOOK = readFileSync(path.join(ROOT, 'docs/runbook.md'), 'utf8');

function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no "${heading}" section in docs/runbook.md`);
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(/\n#{2,3} /);
  return end < 0 ? rest : rest.slice(0, end);
}

/** Commands of the ```sh blocks (continuation lines joined, comment-only lines dropped). */
function commands(markdown: string): string[] {
  const out: string[] = [];
  let fence: string | null = null;
  let pending = '';
  for (const raw of markdown.split('\n')) {
    if (/^```/.test(raw)) {
      fence = fence === null ? raw.slice(3).trim() : null;
      continue;
    }
    if (fence !== 'sh') continue;
    const line = pending + raw;
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    pending = '';
    if (line.trim() && !line.trim().startsWith('#')) out.push(line.trim());
  }
  return out;
}

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const tools = ['psql', 'jq', 'curl'].filter((t) => !has(t));
if (tools.length > 0 && process.env.CI === 'true')
  throw new Error(`credits runbook test needs ${tools.join(', ')} on PATH`);

(tools.length === 0 ? describe : describe.skip)('runbook: Credits and ledger', () => {
  let gw: TestGateway;
  let pg: Client;
  const adminPassword = 'runbook-credits-admin-password';

  beforeAll(async () => {
    gw = await startGateway();
    pg = new Client({ connectionString: gw.databaseUrl });
    await pg.connect();
  });
  afterAll(async () => {
    await pg?.end();
    await gw?.close();
  });

  it('runs every command of the section successfully, with the effects it describes', async () => {
    const lines = commands(section(RUNBOOK, '### Credits and ledger'));
    expect(lines.length).toBeGreaterThan(15);

    const app = gw.gateway.app;
    await app.get(UsersService).setAdminPassword('admin', adminPassword, 'test');
    const alice = await app
      .get(UsersService)
      .create({ username: 'alice', baseQuota: 1000 }, 'test');
    const key = await app.get(ApiKeysService).create({ userId: alice.id, name: 'runbook' }, 'test');
    // A hold whose request died: what "Refunding a failed generation" is for.
    await app
      .get(CreditsService)
      .reserve({ userId: alice.id, amount: 40, requestId: 'runbook-lost-request' });
    // A hand-edited balance: what the audit and "Fixing discrepancies" are for.
    await pg.query(`UPDATE user_credits SET balance = 999999 WHERE user_id = $1`, [alice.id]);

    const script = lines
      .map((line, i) => {
        const command = line
          .replace(/REQUEST_ID/g, 'runbook-lost-request')
          // The CLI lines run without Redis; the parked-closes look-up reads the test's Redis.
          .replace(/^redis-cli -u "\$REDIS_URL"/, 'redis-cli -u "$TEST_REDIS_URL"')
          .replace(
            /^npm run cli -- /,
            'node -r ./test/support/ts-register.js apps/cli/src/main.ts ',
          );
        return `echo "@@CMD ${i}"\n${command}\necho "@@RC ${i} $?"`;
      })
      .join('\n');
    const result = await bash(
      script,
      {
        SY: gw.url,
        DATABASE_URL: gw.databaseUrl,
        ADMIN_PASSWORD: adminPassword,
        API_KEY: key.key,
        LOG_LEVEL: 'silent',
        NODE_ENV: 'test',
        REDIS_URL: '',
        TEST_REDIS_URL: testEnv.redisUrl ?? '',
      },
      ROOT,
      240_000,
    );
    const outputs = new Map<number, string>();
    const failed: string[] = [];
    for (const part of result.stdout.split('@@CMD ').slice(1)) {
      const index = Number(part.slice(0, part.indexOf('\n')));
      const rc = /@@RC \d+ (\d+)/.exec(part);
      outputs.set(index, part.slice(part.indexOf('\n') + 1, part.indexOf('@@RC')));
      if (!rc || rc[1] !== '0') failed.push(`${lines[index]} → exit ${rc?.[1]}`);
    }
    expect({ failed, stderr: failed.length ? result.stderr : '' }).toEqual({
      failed: [],
      stderr: '',
    });
    expect(outputs.size).toBe(lines.length);
    const output = (pattern: RegExp) =>
      [...outputs.entries()].filter(([i]) => pattern.test(lines[i])).map(([, o]) => o);

    // No command answered with an error envelope.
    expect(
      [...outputs].filter(([, out]) => out.includes('"error"')).map(([i]) => lines[i]),
    ).toEqual([]);
    // The CLI and the API grant under the same key: one grant.
    expect(output(/credits:grant/)[0]).toContain('"replayed":false');
    expect(output(/\/admin\/credits\/grant/)[0]).toContain('"replayed": true');
    // The audit saw the hand-edited balance; recalculate fixed it.
    expect(output(/\/admin\/credits\/audit/)[0]).toContain('"ledger_sum"');
    expect(output(/credits\/recalculate \| jq/)[0]).toContain('"old_balance": 999999');
    // The lost request was refunded.
    expect(output(/\/admin\/credits\/refund/)[0]).toContain('"refunded": 40');
    // The early cycle reset wrote one row back to the base quota.
    expect(output(/cycle-reset \| jq '.reset\[\]/)[0]).toContain('"balance_after": 1000');

    const books = await pg.query(
      `SELECT c.balance, COALESCE(SUM(l.amount), 0) AS sum FROM user_credits c
       LEFT JOIN credit_ledger l ON l.user_id = c.user_id WHERE c.user_id = $1 GROUP BY c.balance`,
      [alice.id],
    );
    expect(books.rows[0]).toEqual({ balance: '1000', sum: '1000' });
  }, 300_000);
});
