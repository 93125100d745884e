import { Injectable, OnModuleInit } from '@nestjs/common';
import { CreditsService } from '@app/credits';
import type { Reservation } from '@app/credits';
import type {
  GenerationContext,
  GenerationOutcome,
  StoredAnswer,
} from '../pipeline/generation-context';
import { GenerationPipeline, GenerationPlugin } from '../pipeline/generation-pipeline.service';
import type { ChatCompletion, ChatRequestBody } from './cache.types';
import { ResponseCacheService } from './response-cache.service';

const STORE_KEY = Symbol('cache.storeKey');
const HIT_CHARGE = Symbol('cache.hitCharge');
/** Set by job workers: the job was billed at submit and settles a hit at CACHE_HIT_PRICE itself. */
const PREPAID_JOB_STATE = 'switchyard:prepaid-job';

/**
 * The response cache in the chat pipeline. Runs after conversations (order 20: the key covers
 * the full history sent upstream) and before credits (40): a hit is answered without an upstream
 * call and without the model's reservation, charged CACHE_HIT_PRICE instead (nothing for a free
 * model).
 */
@Injectable()
export class ResponseCachePlugin implements GenerationPlugin, OnModuleInit {
  readonly name = 'response-cache';
  readonly order = 30;

  constructor(
    private readonly cache: ResponseCacheService,
    private readonly pipeline: GenerationPipeline,
    private readonly credits: CreditsService,
  ) {}

  onModuleInit(): void {
    this.pipeline.use(this);
  }

  async lookup(ctx: GenerationContext): Promise<StoredAnswer | undefined> {
    if (ctx.kind !== 'chat') return undefined;
    const found = await this.cache.lookup(ctx.body as ChatRequestBody, ctx.headers, ctx.principal);
    ctx.responseHeaders['x-cache'] = found.result;
    if (found.storeKey) ctx.state.set(STORE_KEY, found.storeKey);
    if (found.result !== 'hit' || !found.completion) return undefined;
    const hitPrice = this.credits.cacheHitPrice(ctx.model);
    if (hitPrice > 0 && !ctx.state.has(PREPAID_JOB_STATE)) {
      // Held before the answer goes out (402 when the balance cannot cover it), settled in finish.
      const reservation = await this.credits.reserve({
        userId: ctx.principal.userId,
        amount: hitPrice,
        requestId: ctx.requestId,
        description: `Cache hit for ${ctx.model}`,
      });
      ctx.state.set(HIT_CHARGE, reservation);
      // A billable response says what is left; a stream's headers go out before finish settles.
      if (reservation.balance !== null)
        ctx.responseHeaders['x-credits-remaining'] = String(reservation.balance);
    }
    return {
      body: found.completion as unknown as StoredAnswer['body'],
      provider: found.provider ?? 'cache',
    };
  }

  async finish(ctx: GenerationContext, outcome: GenerationOutcome): Promise<void> {
    const charge = ctx.state.get(HIT_CHARGE) as Reservation | undefined;
    if (charge) {
      const closed =
        outcome.status === 'failed'
          ? await this.credits.refund(charge, 'cache hit not delivered')
          : await this.credits.settle(charge, charge.amount);
      if (closed?.balance !== null && closed?.balance !== undefined)
        ctx.responseHeaders['x-credits-remaining'] = String(closed.balance);
      ctx.annotate?.({ credits: closed?.charged ?? charge.amount });
    }
    const storeKey = ctx.state.get(STORE_KEY) as string | undefined;
    // Only a complete answer from an upstream is stored: never a cut stream, an error, or a hit.
    if (storeKey && outcome.status === 'succeeded' && !outcome.cached && outcome.completion) {
      // Not awaited: the answer does not depend on it, store() never throws, and the write is
      // on the connection before this client can send its next request.
      void this.cache.store(
        storeKey,
        outcome.completion as unknown as ChatCompletion,
        outcome.provider ?? undefined,
      );
    }
  }
}
