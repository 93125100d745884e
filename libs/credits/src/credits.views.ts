import { CreditAccount, LedgerEntry, LedgerWrite } from './credits.types';
import { encodeCursor } from './credits.dto';
import { StoredPrice } from './pricing.repository';

/** Shapes of the JSON the credit endpoints answer (snake_case, like the rest of the API). */
export function accountView(account: CreditAccount) {
  return {
    balance: account.balance,
    base_quota: account.baseQuota,
    billing_cycle_end: account.billingCycleEnd ? account.billingCycleEnd.toISOString() : null,
  };
}

export function entryView(entry: LedgerEntry) {
  return {
    id: entry.id,
    user_id: entry.userId,
    event_type: entry.eventType,
    amount: entry.amount,
    balance_after: entry.balanceAfter,
    request_id: entry.requestId,
    idempotency_key: entry.idempotencyKey,
    description: entry.description,
    created_at: entry.createdAt.toISOString(),
  };
}

export function writeView(write: LedgerWrite) {
  return { ...entryView(write.entry), replayed: write.replayed };
}

/** `rows` was fetched with limit + 1: the extra row only says that a next page exists. */
export function ledgerPageView(rows: LedgerEntry[], limit: number) {
  const page = rows.slice(0, limit);
  return {
    data: page.map(entryView),
    next_cursor:
      rows.length > limit && page.length > 0 ? encodeCursor(page[page.length - 1].id) : null,
  };
}

export function priceView(price: StoredPrice) {
  return {
    model: price.model,
    per_request: price.perRequest,
    per_1k_prompt_tokens: price.per1kPromptTokens,
    per_1k_completion_tokens: price.per1kCompletionTokens,
    per_image: price.perImage,
    per_image_by_size: price.perImageBySize,
    source: price.source,
    updated_at: price.updatedAt.toISOString(),
  };
}
