import { Injectable, OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { GenerationPipeline } from '@app/generation';
import type { GenerationContext, GenerationOutcome, GenerationPlugin } from '@app/generation';
import { creditHoldsOverlapped } from './credits.metrics';
import { CreditsService } from './credits.service';
import { Reservation } from './credits.types';
import { PricingService } from './pricing.service';

const RESERVATION = Symbol('credits.reservation');
/** Set by the jobs module on a worker's context: its credits were reserved at submit. */
const PREPAID_JOB_STATE = 'switchyard:prepaid-job';

/**
 * Billing in the generation pipeline (order 40: after conversations, which shape the prompt,
 * and the cache, whose hits skip the model's reservation). Before the upstream call it holds
 * the request's maximum price — 402 insufficient_credits before anything is delivered — and when
 * the request ends it settles to the usage delivered (a stream cut short pays for what it
 * delivered) or refunds in full when nothing was. When the balance is known to be far above the
 * hold and the caller allows it, the hold commits while the upstream call starts
 * (ctx.alongsideUpstream): the answer still waits for it, a refused hold aborts the call.
 */
@Injectable()
export class CreditsPlugin implements GenerationPlugin, OnModuleInit {
  readonly name = 'credits';
  readonly order = 40;

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly credits: CreditsService,
    private readonly pricing: PricingService,
  ) {}

  onModuleInit(): void {
    // Resolved here rather than injected: libs/generation imports libs/credits (the cache bills
    // its hits), so a constructor reference to GenerationPipeline would be read while one of the
    // two libraries is still half-loaded.
    this.moduleRef.get(GenerationPipeline, { strict: false }).use(this);
  }

  async beforeUpstream(ctx: GenerationContext): Promise<void> {
    if (ctx.state.has(PREPAID_JOB_STATE)) return;
    const kind = ctx.kind === 'chat' ? 'chat' : 'image';
    const amount = this.pricing.maxPriceOf(ctx.model, kind, ctx.body);
    if (amount <= 0) return;
    const hold = this.credits
      .reserve({
        userId: ctx.principal.userId,
        amount,
        requestId: ctx.requestId,
        description: `Reservation for ${ctx.model}`,
      })
      .then((reservation) => {
        ctx.state.set(RESERVATION, reservation);
        ctx.responseHeaders['x-credits-remaining'] = String(reservation.balance);
      });
    if (ctx.alongsideUpstream && this.credits.holdMayOverlap(ctx.principal.userId, amount)) {
      hold.catch(() => undefined); // the caller awaits it; this only marks it handled
      ctx.alongsideUpstream.push(hold);
      creditHoldsOverlapped.inc();
      return;
    }
    await hold;
  }

  async finish(ctx: GenerationContext, outcome: GenerationOutcome): Promise<void> {
    const reservation = ctx.state.get(RESERVATION) as Reservation | undefined;
    if (!reservation) return;
    const delivered = outcome.usage?.completion_tokens ?? 0;
    const nothingDelivered =
      outcome.status === 'failed' ||
      (outcome.status === 'partial' &&
        outcome.endReason === 'upstream_cut' &&
        delivered === 0 &&
        outcome.images === 0);
    const closed = nothingDelivered
      ? await this.credits.refund(
          reservation,
          outcome.error?.code ?? outcome.endReason ?? 'generation failed',
        )
      : await this.credits.settleForResponse(reservation, this.costOf(ctx, outcome));
    if (closed?.balance !== null && closed?.balance !== undefined)
      ctx.responseHeaders['x-credits-remaining'] = String(closed.balance);
    ctx.annotate?.({ credits: closed?.charged ?? reservation.amount });
  }

  private costOf(ctx: GenerationContext, outcome: GenerationOutcome): number {
    if (ctx.kind === 'chat')
      return this.pricing.priceOf(ctx.model, {
        promptTokens: outcome.usage?.prompt_tokens,
        completionTokens: outcome.usage?.completion_tokens,
      });
    return this.pricing.priceOf(ctx.model, {
      images: outcome.images,
      size: typeof ctx.body.size === 'string' ? ctx.body.size : undefined,
    });
  }
}
