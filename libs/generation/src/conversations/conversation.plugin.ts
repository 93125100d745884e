import { Injectable, OnModuleInit } from '@nestjs/common';
import type { GenerationContext, GenerationOutcome } from '../pipeline/generation-context';
import { GenerationPipeline, GenerationPlugin } from '../pipeline/generation-pipeline.service';
import type { ChatMessage } from '../cache/cache.types';
import { ConversationService, ConversationTurn } from './conversation.service';

const CONVERSATION_ID = Symbol('conversation.id');
const TURN = Symbol('conversation.turn');

/**
 * X-Conversation-Id in the chat pipeline: validated at admission (a malformed id is a 400 before
 * anything is counted or charged), history prepended in prepare (before the cache key and the
 * credit estimate see the messages), the reply appended once the answer is complete. A cache hit
 * is this turn's answer and is appended like any other; an Idempotency-Key replay is an earlier
 * request's answer again, whose turn that request already appended.
 */
@Injectable()
export class ConversationPlugin implements GenerationPlugin, OnModuleInit {
  readonly name = 'conversations';
  readonly order = 20;

  constructor(
    private readonly conversations: ConversationService,
    private readonly pipeline: GenerationPipeline,
  ) {}

  onModuleInit(): void {
    this.pipeline.use(this);
  }

  async admit(ctx: GenerationContext): Promise<void> {
    if (ctx.kind !== 'chat') return;
    const id = this.conversations.idFrom(ctx.headers);
    if (id) ctx.state.set(CONVERSATION_ID, id);
  }

  async prepare(ctx: GenerationContext): Promise<void> {
    const id = ctx.state.get(CONVERSATION_ID) as string | undefined;
    if (!id) return;
    const turn = await this.conversations.begin(
      ctx.principal.userId,
      id,
      (ctx.body.messages ?? []) as ChatMessage[],
    );
    ctx.state.set(TURN, turn);
    ctx.body = { ...ctx.body, messages: turn.messages };
    ctx.responseHeaders['x-conversation-id'] = id;
  }

  async finish(ctx: GenerationContext, outcome: GenerationOutcome): Promise<void> {
    const turn = ctx.state.get(TURN) as ConversationTurn | undefined;
    const reply = outcome.completion?.choices[0]?.message;
    // A failed or cut-short turn leaves the conversation as it was: the client will retry it; a
    // replay's turn was appended by the request it repeats.
    if (!turn || outcome.status !== 'succeeded' || outcome.replayed || !reply) return;
    await this.conversations.complete(turn, reply as ChatMessage);
  }
}
