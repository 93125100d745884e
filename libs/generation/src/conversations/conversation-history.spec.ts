import type { ChatMessage } from '../cache/cache.types';
import {
  appendTurn,
  EMPTY_CONVERSATION,
  estimateTokens,
  messagesWithHistory,
  trimTurns,
} from './conversation-history';

const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });
const wide = { maxMessages: 100, maxTokens: 100_000 };

describe('conversation history', () => {
  it('sends system, remembered turns, then the new message, in order', () => {
    let state = appendTurn(
      EMPTY_CONVERSATION,
      [{ role: 'system', content: 'be brief' }, user('q1')],
      assistant('a1'),
      wide,
    );
    state = appendTurn(state, [user('q2')], assistant('a2'), wide);
    expect(state.system).toEqual([{ role: 'system', content: 'be brief' }]);
    expect(messagesWithHistory(state, [user('q3')], wide)).toEqual([
      { role: 'system', content: 'be brief' },
      user('q1'),
      assistant('a1'),
      user('q2'),
      assistant('a2'),
      user('q3'),
    ]);
  });

  it("lets a request's own system message replace the remembered one", () => {
    const state = appendTurn(
      EMPTY_CONVERSATION,
      [{ role: 'system', content: 'old' }, user('q1')],
      assistant('a1'),
      wide,
    );
    const sent = messagesWithHistory(state, [{ role: 'system', content: 'new' }, user('q2')], wide);
    expect(sent[0]).toEqual({ role: 'system', content: 'new' });
    expect(sent.filter((m) => m.role === 'system')).toHaveLength(1);
  });

  it('keeps at most maxMessages, dropping the oldest and never starting on a reply', () => {
    const turns = [user('1'), assistant('1'), user('2'), assistant('2'), user('3'), assistant('3')];
    expect(trimTurns(turns, { maxMessages: 4, maxTokens: 10_000 })).toEqual(turns.slice(2));
    expect(trimTurns(turns, { maxMessages: 3, maxTokens: 10_000 })).toEqual(turns.slice(4));
  });

  it('keeps the history within the token budget, counting the new message', () => {
    const long = 'x'.repeat(400); // ~104 tokens each
    const state = {
      system: [],
      turns: [user(long), assistant(long), user(long), assistant(long)],
    };
    const bounds = { maxMessages: 100, maxTokens: 3 * estimateTokens(user(long)) };
    const sent = messagesWithHistory(state, [user(long)], bounds);
    // Room for two history messages, but a history must start with a user message.
    expect(sent).toEqual([user(long), assistant(long), user(long)]);
  });
});
