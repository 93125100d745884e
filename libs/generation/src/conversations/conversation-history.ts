import type { ChatMessage } from '../cache/cache.types';

/** What a conversation keeps: the latest system messages and the turns since. */
export interface ConversationState {
  system: ChatMessage[];
  turns: ChatMessage[];
}

export interface HistoryBounds {
  maxMessages: number;
  maxTokens: number;
}

export const EMPTY_CONVERSATION: ConversationState = { system: [], turns: [] };

/** Rough token count (characters / 4, plus a little per message): good enough for a budget. */
export function estimateTokens(message: ChatMessage): number {
  const content =
    typeof message.content === 'string' ? message.content : JSON.stringify(message.content ?? '');
  const calls = message.tool_calls ? JSON.stringify(message.tool_calls) : '';
  return Math.ceil((content.length + calls.length) / 4) + 4;
}

const isSystem = (m: ChatMessage) => m.role === 'system' || m.role === 'developer';

/**
 * Drops the oldest turns until the history fits both bounds, then keeps dropping until it starts
 * with a user message: an upstream must never see a tool result or an assistant reply whose
 * question was cut off.
 */
export function trimTurns(turns: ChatMessage[], bounds: HistoryBounds): ChatMessage[] {
  let start = Math.max(0, turns.length - bounds.maxMessages);
  let tokens = turns.slice(start).reduce((sum, m) => sum + estimateTokens(m), 0);
  while (start < turns.length && tokens > bounds.maxTokens) {
    tokens -= estimateTokens(turns[start]);
    start++;
  }
  while (start < turns.length && turns[start].role !== 'user') start++;
  return turns.slice(start);
}

/**
 * The messages sent upstream: the request's system messages (or, when it has none, the ones
 * remembered), then the remembered turns, then the request's new messages.
 */
export function messagesWithHistory(
  state: ConversationState,
  requestMessages: ChatMessage[],
  bounds: HistoryBounds,
): ChatMessage[] {
  const requestSystem = requestMessages.filter(isSystem);
  const requestTurns = requestMessages.filter((m) => !isSystem(m));
  const system = requestSystem.length > 0 ? requestSystem : state.system;
  const budget = {
    maxMessages: Math.max(0, bounds.maxMessages - requestTurns.length),
    maxTokens: bounds.maxTokens - requestTurns.reduce((sum, m) => sum + estimateTokens(m), 0),
  };
  const history = budget.maxMessages > 0 ? trimTurns(state.turns, budget) : [];
  return [...system, ...history, ...requestTurns];
}

/** The state after a successful turn: new messages and the reply appended, then trimmed. */
export function appendTurn(
  state: ConversationState,
  requestMessages: ChatMessage[],
  reply: ChatMessage,
  bounds: HistoryBounds,
): ConversationState {
  const requestSystem = requestMessages.filter(isSystem);
  return {
    system: requestSystem.length > 0 ? requestSystem : state.system,
    turns: trimTurns(
      [...state.turns, ...requestMessages.filter((m) => !isSystem(m)), reply],
      bounds,
    ),
  };
}
