import { ChatCompletion, Usage } from '../upstream/upstream.types';

interface ToolCallDelta {
  index?: number;
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

/** OpenAI's choice logprobs: token entries for the content and for the refusal. */
interface ChoiceLogprobs {
  content?: unknown[] | null;
  refusal?: unknown[] | null;
}

interface ChoiceDelta {
  index?: number;
  delta?: {
    role?: string;
    content?: string | null;
    tool_calls?: ToolCallDelta[];
    refusal?: string | null;
  };
  logprobs?: ChoiceLogprobs | null;
  finish_reason?: string | null;
}

export interface ChatChunk {
  id?: string;
  created?: number;
  model?: string;
  choices?: ChoiceDelta[];
  usage?: Usage | null;
  error?: { message?: string };
}

interface ChoiceState {
  role: string;
  content: string;
  /** Null until a refusal piece arrives (an answer is content or a refusal). */
  refusal: string | null;
  /** Null until the upstream sends logprobs (only when the request asked for them). */
  logprobs: { content: unknown[] | null; refusal: unknown[] | null } | null;
  finishReason: string | null;
  toolCalls: Map<
    number,
    { id?: string; type: string; function: { name: string; arguments: string } }
  >;
}

/**
 * Rebuilds the complete chat.completion from stream chunks as they pass through, so that a
 * finished stream can be cached and appended to a conversation like a normal answer, and a cut
 * one billed for the text actually delivered.
 */
export class StreamAccumulator {
  private id = '';
  private created = Math.floor(Date.now() / 1000);
  private model: string;
  private readonly choices = new Map<number, ChoiceState>();
  usage: Usage | null = null;
  /** Characters of assistant output delivered so far (for a token estimate). */
  deliveredChars = 0;

  constructor(model: string) {
    this.model = model;
  }

  /** No choice arrived (nothing, or only usage): the stream holds no answer. */
  get empty(): boolean {
    return this.choices.size === 0;
  }

  /** Whether `expected` choices arrived and each said why it ended (finish_reason). */
  finished(expected: number): boolean {
    if (this.choices.size < expected) return false;
    for (const state of this.choices.values()) if (!state.finishReason) return false;
    return true;
  }

  add(chunk: ChatChunk): void {
    if (chunk.id) this.id = chunk.id;
    if (chunk.created) this.created = chunk.created;
    if (chunk.model) this.model = chunk.model;
    // A usage whose counts are not numbers is ignored: the delivered text is estimated instead.
    if (isUsage(chunk.usage)) this.usage = chunk.usage;
    for (const c of chunk.choices ?? []) {
      const index = c.index ?? 0;
      let state = this.choices.get(index);
      if (!state) {
        state = {
          role: 'assistant',
          content: '',
          refusal: null,
          logprobs: null,
          finishReason: null,
          toolCalls: new Map(),
        };
        this.choices.set(index, state);
      }
      const delta = c.delta ?? {};
      if (delta.role) state.role = delta.role;
      if (typeof delta.content === 'string') {
        state.content += delta.content;
        this.deliveredChars += delta.content.length;
      }
      // Some servers send `refusal: ""` beside ordinary content: only text makes a refusal.
      if (typeof delta.refusal === 'string' && delta.refusal.length > 0) {
        state.refusal = (state.refusal ?? '') + delta.refusal;
        this.deliveredChars += delta.refusal.length;
      }
      if (c.logprobs) addLogprobs(state, c.logprobs);
      for (const t of delta.tool_calls ?? []) {
        const key = t.index ?? 0;
        const call = state.toolCalls.get(key) ?? {
          type: 'function',
          function: { name: '', arguments: '' },
        };
        if (t.id) call.id = t.id;
        if (t.type) call.type = t.type;
        if (t.function?.name) call.function.name += t.function.name;
        if (t.function?.arguments) {
          call.function.arguments += t.function.arguments;
          this.deliveredChars += t.function.arguments.length;
        }
        state.toolCalls.set(key, call);
      }
      if (c.finish_reason) state.finishReason = c.finish_reason;
    }
  }

  completion(): ChatCompletion {
    const choices = [...this.choices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, s]) => {
        // As in a non-streamed answer: no content is null beside tool calls or a refusal.
        const onlyOther = s.toolCalls.size > 0 || s.refusal !== null;
        const message: Record<string, unknown> & { role: string; content: string | null } = {
          role: s.role,
          content: s.content.length > 0 || !onlyOther ? s.content : null,
        };
        if (s.refusal !== null) message.refusal = s.refusal;
        if (s.toolCalls.size > 0)
          message.tool_calls = [...s.toolCalls.entries()]
            .sort(([a], [b]) => a - b)
            .map(([, t]) => t);
        return { index, message, logprobs: s.logprobs, finish_reason: s.finishReason };
      });
    return {
      id: this.id,
      object: 'chat.completion',
      created: this.created,
      model: this.model,
      choices,
      ...(this.usage ? { usage: this.usage } : {}),
    };
  }
}

/** Turns a stored chat.completion into stream chunks (a cached answer replayed as SSE). */
export function completionToChunks(completion: ChatCompletion, includeUsage: boolean): string[] {
  const base = {
    id: completion.id,
    object: 'chat.completion.chunk',
    created: completion.created,
    model: completion.model,
  };
  const frames: string[] = [];
  for (const choice of completion.choices) {
    const message = choice.message as {
      role: string;
      content: string | null;
      refusal?: string | null;
      tool_calls?: unknown[];
    };
    const logprobs = (choice as { logprobs?: ChoiceLogprobs | null }).logprobs;
    frames.push(
      JSON.stringify({
        ...base,
        choices: [
          { index: choice.index, delta: { role: message.role, content: '' }, finish_reason: null },
        ],
      }),
    );
    const delta: Record<string, unknown> = {};
    if (message.content) delta.content = message.content;
    if (message.refusal) delta.refusal = message.refusal;
    if (message.tool_calls)
      delta.tool_calls = message.tool_calls.map((t, i) => ({ index: i, ...(t as object) }));
    // The logprobs ride on the chunk that carries the text they are about, as upstream.
    const piece = logprobs
      ? { index: choice.index, delta, logprobs, finish_reason: null }
      : { index: choice.index, delta, finish_reason: null };
    if (Object.keys(delta).length > 0 || logprobs)
      frames.push(JSON.stringify({ ...base, choices: [piece] }));
    frames.push(
      JSON.stringify({
        ...base,
        choices: [
          { index: choice.index, delta: {}, finish_reason: choice.finish_reason ?? 'stop' },
        ],
      }),
    );
  }
  if (includeUsage && completion.usage)
    frames.push(JSON.stringify({ ...base, choices: [], usage: completion.usage }));
  return frames;
}

/** Token counts the gateway can bill by: three non-negative numbers. */
export function isUsage(usage: unknown): usage is Usage {
  if (typeof usage !== 'object' || usage === null) return false;
  const u = usage as Record<string, unknown>;
  return isCount(u.prompt_tokens) && isCount(u.completion_tokens) && isCount(u.total_tokens);
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function addLogprobs(state: ChoiceState, logprobs: ChoiceLogprobs): void {
  const into = (state.logprobs ??= { content: null, refusal: null });
  // Appended in place: a long answer brings a few entries per chunk.
  if (Array.isArray(logprobs.content))
    for (const e of logprobs.content) (into.content ??= []).push(e);
  if (Array.isArray(logprobs.refusal))
    for (const e of logprobs.refusal) (into.refusal ??= []).push(e);
}
