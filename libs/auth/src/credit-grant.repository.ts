import { Injectable } from '@nestjs/common';
import { Queryable } from '@app/database';

/**
 * The one credit write auth needs: the initial grant of a new user (base_quota) and of the
 * bootstrap user (BOOTSTRAP_CREDITS). Ledger row and balance change commit in the caller's
 * transaction, keyed by an idempotency key so a repeated boot never grants twice.
 * Everything else about credits belongs to libs/credits.
 */
@Injectable()
export class CreditGrantRepository {
  /** Returns true when the grant was written, false when this idempotency key already was. */
  async grantOnce(
    tx: Queryable,
    grant: {
      userId: string;
      amount: number;
      idempotencyKey: string;
      description: string;
      baseQuota?: number;
    },
  ): Promise<boolean> {
    // A base quota starts the monthly billing cycle now, so the account shows its cycle end
    // from the first read (GET /v1/credits) rather than after the scheduler's next round.
    await tx.query(
      `INSERT INTO user_credits (user_id, balance, base_quota, billing_cycle_end)
       VALUES ($1, 0, $2::bigint, CASE WHEN $2::bigint > 0 THEN now() + interval '1 month' END)
       ON CONFLICT (user_id) DO NOTHING`,
      [grant.userId, grant.baseQuota ?? 0],
    );
    // The row lock serialises concurrent grants, so balance_after is exact.
    const [credits]: { balance: string }[] = await tx.query(
      `SELECT balance FROM user_credits WHERE user_id = $1 FOR UPDATE`,
      [grant.userId],
    );
    const balanceAfter = Number(credits.balance) + grant.amount;
    const inserted: unknown[] = await tx.query(
      `INSERT INTO credit_ledger (user_id, event_type, amount, balance_after, idempotency_key, description)
       VALUES ($1, 'grant', $2, $3, $4, $5)
       ON CONFLICT (user_id, idempotency_key) DO NOTHING
       RETURNING id`,
      [grant.userId, grant.amount, balanceAfter, grant.idempotencyKey, grant.description],
    );
    if (inserted.length === 0) return false;
    await tx.query(
      `UPDATE user_credits SET balance = balance + $2, updated_at = now() WHERE user_id = $1`,
      [grant.userId, grant.amount],
    );
    return true;
  }
}
