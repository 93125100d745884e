import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ApiError, LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import type { ChatMessage } from '../cache/cache.types';
import {
  appendTurn,
  ConversationState,
  EMPTY_CONVERSATION,
  HistoryBounds,
  messagesWithHistory,
} from './conversation-history';

export const CONVERSATION_HEADER = 'x-conversation-id';

const CONVERSATION_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A conversation in progress: what to send upstream now, and how to remember the reply. */
export interface ConversationTurn {
  id: string;
  userId: string;
  /** The request's own messages (the new turn). */
  requestMessages: ChatMessage[];
  /** History + new turn: what goes upstream (and into the cache key). */
  messages: ChatMessage[];
  state: ConversationState;
}

/**
 * X-Conversation-Id: the gateway remembers a conversation's turns (Redis with a TTL; process
 * memory without Redis) so that clients send only the new message. Conversations belong to the
 * key's user: another user's id of the same name is a different conversation. Two turns sent at
 * once on one conversation are not merged: the later write wins.
 */
@Injectable()
export class ConversationService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly redis: RedisService,
  ) {}

  private get bounds(): HistoryBounds {
    return {
      maxMessages: this.config.conversations.maxMessages,
      maxTokens: this.config.conversations.maxTokens,
    };
  }

  /** The conversation id from the headers; undefined when absent, 400 when malformed. */
  idFrom(headers: Record<string, string | string[] | undefined>): string | undefined {
    const raw = headers[CONVERSATION_HEADER];
    if (raw === undefined) return undefined;
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (typeof value !== 'string' || !CONVERSATION_ID.test(value)) {
      throw ApiError.badRequest(
        'X-Conversation-Id must be 1-128 characters of letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
        CONVERSATION_HEADER,
        'invalid_conversation_id',
      );
    }
    return value;
  }

  private key(userId: string, id: string): string {
    return `conv:${userId}:${id}`;
  }

  /**
   * Loads the history and returns the messages to send upstream. A failure to read (Redis
   * trouble beyond the automatic fallback) proceeds with no history rather than failing.
   */
  async begin(
    userId: string,
    id: string,
    requestMessages: ChatMessage[],
  ): Promise<ConversationTurn> {
    let state = EMPTY_CONVERSATION;
    try {
      const raw = await this.redis.store.get(this.key(userId, id));
      const parsed = raw ? (JSON.parse(raw) as Partial<ConversationState>) : undefined;
      if (parsed && Array.isArray(parsed.system) && Array.isArray(parsed.turns))
        state = { system: parsed.system, turns: parsed.turns };
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message },
        'conversation history unreadable; starting empty',
      );
    }
    return {
      id,
      userId,
      requestMessages,
      state,
      messages: messagesWithHistory(state, requestMessages, this.bounds),
    };
  }

  /** Remembers the new turn and the reply; refreshes the TTL. Never throws. */
  async complete(turn: ConversationTurn, reply: ChatMessage): Promise<void> {
    const next = appendTurn(turn.state, turn.requestMessages, replyMessage(reply), this.bounds);
    try {
      await this.redis.store.set(
        this.key(turn.userId, turn.id),
        JSON.stringify(next),
        this.config.conversations.ttlSeconds * 1000,
      );
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'conversation turn not saved');
    }
  }

  /** Forgets a conversation (used by tests and operators). */
  async forget(userId: string, id: string): Promise<void> {
    await this.redis.store.del(this.key(userId, id));
  }
}

/**
 * Only the fields an upstream accepts back as an assistant message. That message needs content
 * unless it calls tools: a refusal (content null, `refusal` set) or an empty answer is kept as
 * text, or every later turn would send a message the upstream refuses.
 */
function replyMessage(message: ChatMessage): ChatMessage {
  const calls = Array.isArray(message.tool_calls) && message.tool_calls.length > 0;
  const functionCall = typeof message.function_call === 'object' && message.function_call !== null;
  const out: ChatMessage = {
    role: message.role ?? 'assistant',
    content: replyContent(message, calls || functionCall),
  };
  if (calls) out.tool_calls = message.tool_calls;
  if (functionCall) out.function_call = message.function_call;
  if (typeof message.name === 'string') out.name = message.name;
  return out;
}

function replyContent(message: ChatMessage, callsTools: boolean): unknown {
  if (message.content !== null && message.content !== undefined) return message.content;
  if (typeof message.refusal === 'string') return message.refusal;
  return callsTools ? null : '';
}
