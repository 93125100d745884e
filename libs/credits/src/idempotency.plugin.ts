import { Injectable, OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { GenerationPipeline } from '@app/generation';
import type {
  GenerationContext,
  GenerationOutcome,
  GenerationPlugin,
  StoredAnswer,
} from '@app/generation';
import { IdempotencyService, parseIdempotencyKey, requestHashOf } from './idempotency.service';

const REQUEST_HASH = Symbol('idempotency.requestHash');
const CLAIM = Symbol('idempotency.claim');
const PREPAID_JOB_STATE = 'switchyard:prepaid-job';
/**
 * Where the answer is recorded: after every plugin that writes response headers in its finish
 * (the cache bills a hit at 30, credits settle at 40), so that a replay carries the headers of
 * the settled request rather than those of its hold.
 */
const RECORD_ORDER = 90;

const ROUTES = { chat: '/v1/chat/completions', images: '/v1/images/generations' } as const;

/**
 * `Idempotency-Key` on billable requests (DESIGN §4). The request is fingerprinted in `admit`,
 * before conversations rewrite the body; `lookup` (order 25: before the cache and before
 * credits) either claims the key — this request runs and is charged — or answers the stored
 * response of the first attempt (waiting while it still runs), without a second charge. A
 * different body under the same key is a 409. Only a complete answer is stored, once the request
 * has settled (RECORD_ORDER); a failed or cut attempt releases the key so that the retry runs
 * again.
 */
@Injectable()
export class IdempotencyPlugin implements GenerationPlugin, OnModuleInit {
  readonly name = 'idempotency';
  readonly order = 25;

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly idempotency: IdempotencyService,
  ) {}

  onModuleInit(): void {
    // Resolved here rather than injected: libs/generation imports libs/credits (the cache bills
    // its hits), so a constructor reference to GenerationPipeline would be read while one of the
    // two libraries is still half-loaded.
    const pipeline = this.moduleRef.get(GenerationPipeline, { strict: false });
    pipeline.use(this);
    pipeline.use({
      name: 'idempotency-record',
      order: RECORD_ORDER,
      finish: (ctx, outcome) => this.record(ctx, outcome),
    });
  }

  async admit(ctx: GenerationContext): Promise<void> {
    // Jobs carry their own Idempotency-Key handling at submit.
    if (ctx.state.has(PREPAID_JOB_STATE)) return;
    const key = parseIdempotencyKey(ctx.headers['idempotency-key']);
    if (key === undefined) return;
    ctx.state.set(REQUEST_HASH, {
      key,
      hash: requestHashOf({ method: 'POST', route: ROUTES[ctx.kind], body: ctx.body }),
    });
  }

  async lookup(ctx: GenerationContext): Promise<StoredAnswer | undefined> {
    const request = ctx.state.get(REQUEST_HASH) as { key: string; hash: string } | undefined;
    if (!request) return undefined;
    const claim = await this.idempotency.beginHashed(
      ctx.principal.userId,
      request.key,
      request.hash,
    );
    if (claim.kind === 'execute') {
      ctx.state.set(CLAIM, claim);
      return undefined;
    }
    ctx.responseHeaders['idempotent-replayed'] = 'true';
    const headers = claim.response.headers;
    for (const name of ['x-credits-remaining', 'x-cache'])
      if (headers[name] !== undefined) ctx.responseHeaders[name] = headers[name];
    return {
      body: claim.response.body as StoredAnswer['body'],
      provider: headers['x-provider'] ?? 'replay',
      replay: true,
    };
  }

  /** The pipeline's finish at RECORD_ORDER: stores a complete answer, releases the key otherwise. */
  private async record(ctx: GenerationContext, outcome: GenerationOutcome): Promise<void> {
    const claim = ctx.state.get(CLAIM) as { userId: string; key: string } | undefined;
    if (!claim) return;
    const body = outcome.completion ?? outcome.imagesResponse;
    if (outcome.status !== 'succeeded' || !body) {
      await this.idempotency.release(claim);
      return;
    }
    const headers: Record<string, string> = {};
    for (const name of ['x-provider', 'x-credits-remaining', 'x-cache'])
      if (ctx.responseHeaders[name] !== undefined) headers[name] = ctx.responseHeaders[name];
    if (outcome.provider) headers['x-provider'] = outcome.provider;
    await this.idempotency.complete(claim, { status: 200, headers, body });
  }
}
