import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationShutdown,
  OnModuleInit,
} from '@nestjs/common';
import type { Logger } from 'pino';
import { INITIAL_GRANT_KEY } from '@app/auth';
import { APP_CONFIG, AppConfig } from '@app/config';
import { isUnanswered } from '@app/database';
import { ApiError, LOGGER, uuidV7 } from '@app/observability';
import { RedisService } from '@app/redis';
import {
  idempotencyConflict,
  insufficientCredits,
  isForeignKeyViolation,
  userNotFound,
} from './credits.errors';
import { creditFailures, creditsSpent } from './credits.metrics';
import { ClosedReservation, CreditsRepository } from './credits.repository';
import {
  BalanceChange,
  CreditAccount,
  CreditAudit,
  LedgerEntry,
  LedgerWrite,
  Reservation,
  ReservationClose,
} from './credits.types';
import { LedgerBatcher } from './ledger-batcher';
import { assertAdminLedgerKey, RESERVE_KEY_PREFIX } from './ledger-keys';
import { BillableKind, PricingService } from './pricing.service';

/** A debit with no settle or refund after this long shows up in the audit. */
export const OPEN_RESERVATION_MINUTES = 60;
const CLOSE_RETRY_MS = 5_000;
const MAX_PENDING_CLOSES = 10_000;
/**
 * Redis hash (field: reservation id) of closes a replica still owed the ledger when it stopped:
 * the database was away, and the retries lived in its memory. Every replica retries them.
 */
const PARKED_CLOSES_KEY = 'credits:parked-closes';
/**
 * A hold may commit while the upstream call starts only when this process saw the account,
 * at most RECENT_BALANCE_MS ago, with a balance of at least OVERLAP_MARGIN times the hold: then
 * only spending elsewhere (another replica, an admin) can make it fail, and that costs an
 * aborted upstream call, never an unpaid answer.
 */
const OVERLAP_MARGIN = 100;
const RECENT_BALANCE_MS = 10_000;
const MAX_RECENT_BALANCES = 10_000;

export interface ReserveInput {
  userId: string;
  amount: number;
  requestId?: string | null;
  /** Makes the hold itself idempotent: a repeat returns the first reservation. */
  idempotencyKey?: string;
  description?: string;
}

interface PendingClose {
  reservation: Reservation;
  actual: number | null;
  description: string;
  /** A hold sent and never answered: refund it if it was written, void it if not. */
  inDoubt?: boolean;
}

class ReservationNotFound extends Error {
  constructor(id: string) {
    super(`reservation ${id} not found`);
  }
}

/** A settle's amount: whole credits, rounded up, never negative (garbage counts as 0). */
function usageToCharge(amount: number): number {
  return Math.max(0, Math.ceil(Number.isFinite(amount) ? amount : 0));
}

function assertAmount(amount: number, param = 'amount'): void {
  if (!Number.isSafeInteger(amount))
    throw ApiError.badRequest(`${param} must be a whole number of credits`, param);
}

/**
 * The credit rules the rest of the gateway calls. A billable request reserves its maximum
 * price before any of its answer reaches the client (402 when the balance cannot cover it),
 * then either settles to what it really used or is refunded. All atomicity lives in Postgres
 * (see CreditsRepository), so the rules hold across replicas.
 */
@Injectable()
export class CreditsService
  implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown
{
  /** Closes that failed (database away) and are retried; closes are idempotent, so retrying is safe. */
  private readonly pendingCloses = new Map<string, PendingClose>();
  private retryTimer?: NodeJS.Timeout;
  /** Settles answered before they committed; shutdown waits for them. */
  private readonly settlingInBackground = new Set<Promise<unknown>>();
  /** Balances this process's own ledger writes returned, by user (for holdMayOverlap). */
  private readonly recentBalances = new Map<string, { balance: number; at: number }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly repository: CreditsRepository,
    private readonly pricing: PricingService,
    private readonly batcher: LedgerBatcher,
    private readonly redis: RedisService,
  ) {}

  onModuleInit(): void {
    if (!this.config.backgroundTasks) return;
    this.retryTimer = setInterval(() => void this.retryPendingCloses(), CLOSE_RETRY_MS);
    this.retryTimer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.settlingInBackground]);
    await this.retryPendingCloses();
    await this.parkPendingCloses();
  }

  /**
   * Closes still failing at shutdown would die with this process, leaving each hold open (the
   * user over-held, the request never settled to what it used). They go to Redis for the other
   * replicas, or the next start, to retry; without Redis each one is logged with what an
   * operator needs to write it by hand.
   */
  private async parkPendingCloses(): Promise<void> {
    for (const [id, pending] of this.pendingCloses) {
      const parked = await this.redis.withFallback(
        async (client) => {
          await client.hset(PARKED_CLOSES_KEY, id, JSON.stringify(pending));
          return true;
        },
        () => false,
      );
      this.logger.error(
        {
          reservation_id: id,
          request_id: pending.reservation.requestId,
          user_id: pending.reservation.userId,
          held: pending.reservation.amount,
          close: pending.actual === null ? 'refund' : 'settle',
          actual: pending.actual,
          in_doubt: pending.inDoubt === true,
        },
        parked
          ? 'credit close not written before shutdown; parked in Redis for another replica'
          : 'credit close lost at shutdown; write it by hand (runbook "Open reservations")',
      );
    }
    this.pendingCloses.clear();
  }

  onApplicationShutdown(): void {
    if (this.retryTimer) clearInterval(this.retryTimer);
  }

  // ---- the generation pipeline -------------------------------------------------------------

  /**
   * Holds `amount` credits for one request, atomically and never below zero; throws 402
   * insufficient_credits when the balance cannot cover it. An amount of 0 (a free model) holds
   * nothing and writes nothing.
   */
  async reserve(input: ReserveInput): Promise<Reservation> {
    assertAmount(input.amount);
    const requestId = input.requestId ?? null;
    if (input.amount <= 0)
      return { id: null, userId: input.userId, amount: 0, requestId, balance: null };
    let write: LedgerWrite | null;
    try {
      write = await this.debitForReserve(input, requestId);
    } catch (err) {
      creditFailures.inc({ reason: 'reserve_error' });
      throw err;
    }
    if (!write) {
      creditFailures.inc({ reason: 'insufficient_credits' });
      this.recentBalances.delete(input.userId);
      const account = await this.repository.account(input.userId);
      throw insufficientCredits(input.amount, account?.balance ?? 0);
    }
    this.noteBalance(input.userId, write.entry.balanceAfter);
    return {
      id: write.entry.id,
      userId: input.userId,
      amount: -write.entry.amount,
      requestId: write.entry.requestId,
      balance: write.entry.balanceAfter,
    };
  }

  /**
   * Whether a hold of `amount` may still be committing when the upstream call starts (the
   * caller then waits for it before answering): this process recently saw the balance far above
   * it, and CREDIT_HOLD_OVERLAP is on.
   */
  holdMayOverlap(userId: string, amount: number): boolean {
    if (!this.config.credits.holdOverlap) return false;
    const seen = this.recentBalances.get(userId);
    return (
      seen !== undefined &&
      Date.now() - seen.at < RECENT_BALANCE_MS &&
      seen.balance >= OVERLAP_MARGIN * amount
    );
  }

  private noteBalance(userId: string, balance: number): void {
    if (this.recentBalances.size >= MAX_RECENT_BALANCES && !this.recentBalances.has(userId))
      this.recentBalances.clear();
    this.recentBalances.set(userId, { balance, at: Date.now() });
  }

  /**
   * A keyed hold goes alone (its replay logic is per row); the rest share a group commit. The
   * hold's ledger id is named here, before it is sent: when a statement is sent and its reply
   * never comes, the hold may or may not have been written. The retry on its own then carries
   * the same id (an earlier write is found, not doubled), and when that does not settle the
   * doubt either, the hold is left to the retry tick (holdInDoubt).
   */
  private async debitForReserve(
    input: ReserveInput,
    requestId: string | null,
  ): Promise<LedgerWrite | null> {
    const description = input.description ?? 'Reservation';
    const id = uuidV7();
    let unanswered = false;
    if (!input.idempotencyKey) {
      const batched = await this.batcher
        .apply({
          kind: 'debit',
          id,
          userId: input.userId,
          amount: input.amount,
          requestId,
          description,
        })
        .catch((err: unknown) => {
          unanswered = isUnanswered(err);
          return undefined; // the statement failed as a whole: try this one on its own
        });
      if (batched?.status === 'insufficient') return null;
      if (batched?.status === 'ok') return { entry: batched.entry, replayed: false };
    }
    const hold = { id, userId: input.userId, amount: input.amount, requestId, balance: null };
    let write: LedgerWrite | null;
    try {
      write = await this.repository.debit({
        id,
        userId: input.userId,
        amount: input.amount,
        eventType: 'debit',
        idempotencyKey: input.idempotencyKey
          ? `${RESERVE_KEY_PREFIX}${input.idempotencyKey}`
          : null,
        requestId,
        description,
      });
    } catch (err) {
      if (unanswered || isUnanswered(err)) this.holdInDoubt(hold);
      throw err;
    }
    // Refused for the balance while the first attempt is unaccounted for: that attempt may be
    // what took the balance.
    if (write === null && unanswered) this.holdInDoubt(hold);
    return write;
  }

  /**
   * A hold whose write is in doubt: the request fails, and the retry tick refunds the hold if it
   * was written or voids its id if not (CreditsRepository.settleHoldInDoubt), so the credits
   * come back without an operator.
   */
  private holdInDoubt(hold: Reservation & { id: string }): void {
    creditFailures.inc({ reason: 'hold_in_doubt' });
    this.logger.error(
      {
        reservation_id: hold.id,
        request_id: hold.requestId,
        user_id: hold.userId,
        held: hold.amount,
      },
      'credit hold sent and not answered; it will be refunded if it was written, voided if not',
    );
    this.owe({
      reservation: hold,
      actual: null,
      description: 'Refund: hold in doubt (its write was not answered)',
      inDoubt: true,
    });
  }

  /** Puts a close on the list the retry tick works through (bounded: an outage is not a leak). */
  private owe(close: PendingClose): void {
    if (this.pendingCloses.size < MAX_PENDING_CLOSES)
      this.pendingCloses.set(close.reservation.id!, close);
  }

  /** Reserves the maximum price of a chat or image request for `model` (free models: nothing). */
  async reserveFor(input: {
    userId: string;
    model: string;
    kind: BillableKind;
    body: Record<string, unknown>;
    requestId?: string | null;
    idempotencyKey?: string;
  }): Promise<Reservation> {
    const amount = this.pricing.maxPriceOf(input.model, input.kind, input.body);
    return this.reserve({
      userId: input.userId,
      amount,
      requestId: input.requestId,
      idempotencyKey: input.idempotencyKey,
      description: `Reservation for ${input.model}`,
    });
  }

  /**
   * Settles a reservation to what the request really cost: the unused part comes back as one
   * `settle` row; usage beyond the hold is taken as far as the balance goes. Never throws (the
   * response is already on its way): a database failure is logged, counted and retried.
   */
  async settle(reservation: Reservation, actualAmount: number): Promise<ReservationClose | null> {
    return this.close(reservation, usageToCharge(actualAmount), 'Settled to usage');
  }

  /**
   * `settle` for a request whose response is about to go out. With CREDIT_SETTLE_AFTER_RESPONSE
   * a settle within its hold — it only gives credits back and cannot fail for the balance —
   * commits after the response; what it charges and leaves is known now, as of the hold.
   */
  async settleForResponse(
    reservation: Reservation,
    actualAmount: number,
  ): Promise<ReservationClose | null> {
    const actual = usageToCharge(actualAmount);
    if (
      !this.config.credits.settleAfterResponse ||
      reservation.id === null ||
      actual > reservation.amount
    )
      return this.settle(reservation, actual);
    this.settleInBackground(reservation, actual);
    const returned = reservation.amount - actual;
    return {
      charged: actual,
      returned,
      balance: reservation.balance === null ? null : reservation.balance + returned,
      alreadyClosed: false,
    };
  }

  /**
   * Settles without the caller waiting (a response already on its way). Like `settle` it never
   * throws; a failure is retried in the background, and shutdown waits for what is in flight.
   */
  settleInBackground(reservation: Reservation, actualAmount: number): void {
    const settling: Promise<unknown> = this.close(
      reservation,
      usageToCharge(actualAmount),
      'Settled to usage',
      { patient: true },
    ).finally(() => this.settlingInBackground.delete(settling));
    this.settlingInBackground.add(settling);
  }

  /** Gives a whole reservation back (upstream failure, timeout, cancelled job). Never throws. */
  async refund(reservation: Reservation, reason: string): Promise<ReservationClose | null> {
    return this.close(reservation, null, `Refund: ${reason}`.slice(0, 500));
  }

  /** `patient`: nobody waits for the result, so the ledger batch may wait for company. */
  private async close(
    reservation: Reservation,
    actual: number | null,
    description: string,
    options: { patient?: boolean } = {},
  ): Promise<ReservationClose | null> {
    if (reservation.id === null)
      return { charged: 0, returned: 0, balance: null, alreadyClosed: false };
    try {
      return await this.closeNow(reservation, actual, description, options);
    } catch (err) {
      if (err instanceof ReservationNotFound) {
        // Nothing to retry: a caller bug (or a ledger row deleted by hand), not an outage.
        this.logger.error(
          { reservation_id: reservation.id, request_id: reservation.requestId },
          'credit close: no such reservation',
        );
        return null;
      }
      const reason = actual === null ? 'refund_error' : 'settle_error';
      creditFailures.inc({ reason });
      this.logger.error(
        {
          err: (err as Error).message,
          reservation_id: reservation.id,
          request_id: reservation.requestId,
        },
        `credit ${actual === null ? 'refund' : 'settle'} failed; will retry`,
      );
      this.owe({ reservation, actual, description });
      return null;
    }
  }

  private async closeNow(
    reservation: Reservation,
    actual: number | null,
    description: string,
    options: { patient?: boolean } = {},
  ): Promise<ReservationClose> {
    const closed =
      (await this.closeInBatch(reservation, actual, description, options)) ??
      (await this.repository.closeReservation(
        reservation.id!,
        actual,
        reservation.requestId,
        description,
      ));
    if (!closed) throw new ReservationNotFound(reservation.id!);
    this.noteBalance(reservation.userId, closed.entry.balanceAfter);
    const returned = closed.entry.amount;
    const charged = closed.reserved - returned;
    if (!closed.replayed && charged > 0) creditsSpent.inc(charged);
    return {
      charged,
      returned,
      balance: closed.entry.balanceAfter,
      alreadyClosed: closed.replayed,
    };
  }

  /**
   * The common close (an open hold, usage within it) in a group commit; undefined for the rest
   * (usage beyond the hold, a repeat, a failed batch), which CreditsRepository.closeReservation
   * does under the account's row lock.
   */
  private async closeInBatch(
    reservation: Reservation,
    actual: number | null,
    description: string,
    options: { patient?: boolean },
  ): Promise<ClosedReservation | undefined> {
    const result = await this.batcher
      .apply(
        {
          kind: actual === null ? 'refund' : 'settle',
          userId: reservation.userId,
          reservationId: reservation.id!,
          actual,
          requestId: reservation.requestId,
          description,
        },
        options.patient,
      )
      .catch(() => undefined); // the locked path retries it and reports its own error
    if (result?.status !== 'ok') return undefined;
    return { entry: result.entry, reserved: result.reserved ?? 0, replayed: false };
  }

  private async retryPendingCloses(): Promise<void> {
    for (const [id, pending] of [...this.pendingCloses]) {
      try {
        await this.writeClose(pending);
        this.logger.info({ reservation_id: id }, 'credit close retried successfully');
      } catch (err) {
        if (!(err instanceof ReservationNotFound)) return; // still failing: next tick
        this.logger.error({ reservation_id: id }, 'credit close dropped: no such reservation');
      }
      this.pendingCloses.delete(id);
    }
    await this.retryParkedCloses();
  }

  private async writeClose(pending: PendingClose): Promise<void> {
    const { reservation, actual, description } = pending;
    if (!pending.inDoubt) {
      await this.closeNow(reservation, actual, description);
      return;
    }
    const outcome = await this.repository.settleHoldInDoubt(
      { id: reservation.id!, userId: reservation.userId, requestId: reservation.requestId },
      description,
    );
    if (outcome === undefined) throw new ReservationNotFound(reservation.id!);
    this.logger.info(
      { reservation_id: reservation.id, request_id: reservation.requestId },
      outcome === 'voided'
        ? 'credit hold in doubt had not been written; its id is void'
        : 'credit hold in doubt had been written; refunded',
    );
  }

  /** Closes another replica parked at its shutdown; closes are idempotent, so two may race. */
  private async retryParkedCloses(): Promise<void> {
    const parked = await this.redis.withFallback(
      (client) => client.hgetall(PARKED_CLOSES_KEY),
      () => ({}) as Record<string, string>,
    );
    for (const [id, json] of Object.entries(parked)) {
      try {
        await this.writeClose(JSON.parse(json) as PendingClose);
        this.logger.info({ reservation_id: id }, 'parked credit close written');
      } catch (err) {
        // Only an outage is worth another try; a bad entry or a missing debit never will be.
        if (!(err instanceof ReservationNotFound) && !(err instanceof SyntaxError)) return;
        this.logger.error(
          { reservation_id: id, err: (err as Error).message },
          'parked credit close dropped: no such reservation, or not a close',
        );
      }
      await this.redis.withFallback(
        (client) => client.hdel(PARKED_CLOSES_KEY, id),
        () => 0,
      );
    }
  }

  /** What a usage of `model` costs (for settle). */
  priceOf(model: string, usage: Parameters<PricingService['priceOf']>[1]): number {
    return this.pricing.priceOf(model, usage);
  }

  /** What an answer of `model` served from the response cache costs. */
  cacheHitPrice(model: string): number {
    return this.pricing.cacheHitPrice(model);
  }

  // ---- accounts ------------------------------------------------------------------------------

  async balance(userId: string): Promise<CreditAccount> {
    return (
      (await this.repository.account(userId)) ?? {
        userId,
        balance: 0,
        baseQuota: 0,
        billingCycleEnd: null,
      }
    );
  }

  async ledger(userId: string, limit: number, afterId?: string): Promise<LedgerEntry[]> {
    return this.repository.ledgerPage(userId, limit, afterId);
  }

  /**
   * Creates a user's account with its base quota and grants that quota once (keyed, so a
   * repeated call grants nothing). A positive quota starts a monthly billing cycle.
   */
  async openAccount(userId: string, baseQuota: number): Promise<void> {
    assertAmount(baseQuota, 'base_quota');
    await this.translateMissingUser(userId, () => this.repository.upsertAccount(userId, baseQuota));
    if (baseQuota > 0)
      await this.addGrant(userId, baseQuota, 'Initial base quota', INITIAL_GRANT_KEY);
  }

  /**
   * An admin's grant. With an idempotency key, a retry returns the original grant and writes
   * nothing; the same key with another amount is a 409; a key of the gateway's own namespace
   * (`initial-grant`, `close:…`, see ledger-keys.ts) is a 400.
   */
  async grant(
    userId: string,
    amount: number,
    description: string,
    idempotencyKey?: string,
  ): Promise<LedgerWrite> {
    assertAdminLedgerKey(idempotencyKey);
    return this.addGrant(userId, amount, description, idempotencyKey);
  }

  private async addGrant(
    userId: string,
    amount: number,
    description: string,
    idempotencyKey?: string,
  ): Promise<LedgerWrite> {
    assertAmount(amount);
    if (amount <= 0) throw ApiError.badRequest('amount must be positive', 'amount');
    const write = await this.translateMissingUser(userId, () =>
      this.repository.credit({
        userId,
        amount,
        eventType: 'grant',
        idempotencyKey: idempotencyKey ?? null,
        description,
      }),
    );
    this.checkReplay(write, 'grant', amount);
    return write;
  }

  /**
   * An admin's correction, up or down (ledger `admin_adjustment`). A decrease that would take
   * the balance below zero is refused.
   */
  async adminAdjust(
    userId: string,
    amount: number,
    description: string,
    idempotencyKey?: string,
  ): Promise<LedgerWrite> {
    assertAmount(amount);
    if (amount === 0) throw ApiError.badRequest('amount must not be zero', 'amount');
    assertAdminLedgerKey(idempotencyKey);
    const input = {
      userId,
      amount: Math.abs(amount),
      eventType: 'admin_adjustment' as const,
      idempotencyKey: idempotencyKey ?? null,
      description,
    };
    let write: LedgerWrite | null;
    if (amount > 0) {
      write = await this.translateMissingUser(userId, () => this.repository.credit(input));
    } else {
      write = await this.repository.debit(input);
      if (!write) {
        if (!(await this.repository.userExists(userId))) throw userNotFound(userId);
        const account = await this.balance(userId);
        throw ApiError.badRequest(
          `An adjustment of ${amount} would take the balance (${account.balance}) below zero`,
          'amount',
          'balance_would_be_negative',
        );
      }
    }
    this.checkReplay(write, 'admin_adjustment', amount);
    return write;
  }

  /** Grant and adjust keys come in the body's `idempotency_key`, so the 409 names that field. */
  private checkReplay(write: LedgerWrite, eventType: string, amount: number): void {
    if (write.replayed && (write.entry.eventType !== eventType || write.entry.amount !== amount))
      throw idempotencyConflict('idempotency_key');
  }

  private async translateMissingUser<T>(userId: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (isForeignKeyViolation(err)) throw userNotFound(userId);
      throw err;
    }
  }

  /**
   * Refunds the open reservation(s) of a request, by its x-request-id (seed 004 "refund a failed
   * generation"). Returns what was refunded; reservations already closed are left alone.
   */
  async refundRequest(
    requestId: string,
    reason: string,
  ): Promise<{ reservation_id: string; refunded: number; already_closed: boolean }[]> {
    const debits = await this.repository.debitsOfRequest(requestId);
    if (debits.length === 0)
      throw ApiError.notFound(
        `No reservation found for request ${requestId}`,
        'reservation_not_found',
        'request_id',
      );
    const results = [];
    for (const debit of debits) {
      const closed = await this.closeNow(
        {
          id: debit.id,
          userId: debit.userId,
          amount: -debit.amount,
          requestId: debit.requestId,
          balance: null,
        },
        null,
        `Refund: ${reason}`.slice(0, 500),
      );
      results.push({
        reservation_id: debit.id,
        refunded: closed.alreadyClosed ? 0 : closed.returned,
        already_closed: closed.alreadyClosed,
      });
    }
    return results;
  }

  // ---- maintenance ---------------------------------------------------------------------------

  /** Billing-cycle resets that are due (all users, or one); idempotent per user and cycle. */
  async cycleReset(userId?: string): Promise<LedgerEntry[]> {
    const entries = await this.repository.resetDueCycles(userId);
    if (entries.length > 0)
      this.logger.info({ users: entries.length }, 'billing cycle reset to base quota');
    return entries;
  }

  async recalculate(
    userId?: string,
  ): Promise<{ changed: BalanceChange[]; unfixable: { userId: string; ledgerSum: number }[] }> {
    const result = await this.repository.recalculate(userId);
    if (result.changed.length > 0)
      this.logger.warn({ changed: result.changed }, 'credit balances recalculated from the ledger');
    return result;
  }

  async audit(): Promise<CreditAudit> {
    return this.repository.audit(OPEN_RESERVATION_MINUTES);
  }
}
