import { MigrationInterface, QueryRunner } from 'typeorm';

/** Number.MAX_SAFE_INTEGER: the largest balance a JSON number (and the gateway) holds exactly. */
const MAX_BALANCE = '9007199254740991';

/** Each limit is its own constraint, so a violation names what went over (libs/credits maps them). */
const LIMITS = [
  { table: 'user_credits', name: 'user_credits_balance_max', check: `balance <= ${MAX_BALANCE}` },
  {
    table: 'user_credits',
    name: 'user_credits_base_quota_max',
    check: `base_quota <= ${MAX_BALANCE}`,
  },
  {
    table: 'credit_ledger',
    name: 'credit_ledger_balance_after_max',
    check: `balance_after <= ${MAX_BALANCE}`,
  },
  {
    table: 'credit_ledger',
    name: 'credit_ledger_amount_max',
    check: `amount BETWEEN -${MAX_BALANCE} AND ${MAX_BALANCE}`,
  },
];

/**
 * Caps balances, base quotas and ledger amounts at 2^53 − 1. Above it a bigint read into a JS
 * number is rounded, so the API reported balances that Postgres did not hold (a grant on top of
 * a base quota of 2^53 − 1 answered …992 for …991). With the cap in the database every write that
 * would cross it fails as a whole (SQLSTATE 23514) and CreditsRepository answers 400
 * `balance_limit_exceeded`.
 *
 * Rows already over the limit are not clamped: the migration fails naming them, and changes
 * nothing, so an operator decides what those balances should be.
 *
 * Outside a transaction, so that checking a large credit_ledger does not block billing: each
 * constraint is added NOT VALID (a brief exclusive lock; new writes are checked from then on),
 * then validated under a lock that lets reads and writes go on. A failed validation drops what
 * this run added, so a rerun starts clean.
 */
export class BalanceLimit1732300016000 implements MigrationInterface {
  name = 'BalanceLimit1732300016000';
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    await refuseRowsOverLimit(q);
    for (const limit of LIMITS)
      await q.query(
        `ALTER TABLE ${limit.table} DROP CONSTRAINT IF EXISTS ${limit.name},
           ADD CONSTRAINT ${limit.name} CHECK (${limit.check}) NOT VALID`,
      );
    try {
      for (const limit of LIMITS)
        await q.query(`ALTER TABLE ${limit.table} VALIDATE CONSTRAINT ${limit.name}`);
    } catch (err) {
      // A row crossed the limit between the check and the constraint (an older replica wrote it).
      await dropLimits(q, 'IF EXISTS');
      await refuseRowsOverLimit(q);
      throw err;
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await dropLimits(q, '');
  }
}

async function dropLimits(q: QueryRunner, ifExists: 'IF EXISTS' | ''): Promise<void> {
  for (const limit of [...LIMITS].reverse())
    await q.query(`ALTER TABLE ${limit.table} DROP CONSTRAINT ${ifExists} ${limit.name}`);
}

/** Throws, naming the offending rows' users, when any row is already over a limit. */
async function refuseRowsOverLimit(q: QueryRunner): Promise<void> {
  const problems: string[] = [];
  for (const limit of LIMITS) {
    const [found]: { n: string; users: string | null }[] = await q.query(
      `SELECT count(*) AS n,
              array_to_string((array_agg(DISTINCT user_id::text))[1:5], ', ') AS users
         FROM ${limit.table} WHERE NOT (${limit.check})`,
    );
    if (Number(found.n) > 0)
      problems.push(
        `${found.n} ${limit.table} row(s) break ${limit.check} (users: ${found.users})`,
      );
  }
  if (problems.length > 0)
    throw new Error(
      `BalanceLimit1732300016000: cannot cap balances at ${MAX_BALANCE} credits: ` +
        `${problems.join('; ')}. Nothing was changed. Bring these rows within the limit by hand ` +
        '(a balance and its ledger together: a balance is the sum of its ledger rows), then migrate again.',
    );
}
