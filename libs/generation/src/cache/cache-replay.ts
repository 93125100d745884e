import type { ChatCompletion, ChatCompletionChunk } from './cache.types';

/**
 * A cached completion replayed as the chunks an OpenAI-compatible stream would have sent: for
 * each choice a role chunk, a content (and tool_calls) chunk and a finish chunk; then, when the
 * client asked for stream_options.include_usage, a usage chunk with no choices. Clients that
 * parse live streams parse this the same way.
 */
export function replayChunks(
  completion: ChatCompletion,
  options: { includeUsage: boolean },
): ChatCompletionChunk[] {
  const base = {
    id: completion.id,
    object: 'chat.completion.chunk' as const,
    created: completion.created,
    model: completion.model,
    ...(completion.system_fingerprint !== undefined
      ? { system_fingerprint: completion.system_fingerprint }
      : {}),
  };
  const withUsage = options.includeUsage ? { usage: null } : {};
  const chunks: ChatCompletionChunk[] = [];
  for (const choice of completion.choices) {
    const { role, content, tool_calls, refusal } = choice.message;
    chunks.push({
      ...base,
      choices: [
        { index: choice.index, delta: { role, content: '' }, logprobs: null, finish_reason: null },
      ],
      ...withUsage,
    });
    const delta: Record<string, unknown> = {};
    if (typeof content === 'string' && content.length > 0) delta.content = content;
    if (Array.isArray(tool_calls) && tool_calls.length > 0) {
      delta.tool_calls = tool_calls.map((call, index) => ({ index, ...(call as object) }));
    }
    if (typeof refusal === 'string') delta.refusal = refusal;
    if (Object.keys(delta).length > 0) {
      chunks.push({
        ...base,
        choices: [
          { index: choice.index, delta, logprobs: choice.logprobs ?? null, finish_reason: null },
        ],
        ...withUsage,
      });
    }
    chunks.push({
      ...base,
      choices: [
        { index: choice.index, delta: {}, logprobs: null, finish_reason: choice.finish_reason },
      ],
      ...withUsage,
    });
  }
  if (options.includeUsage && completion.usage) {
    chunks.push({ ...base, choices: [], usage: completion.usage });
  }
  return chunks;
}

export function sseFrame(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

export const SSE_DONE = 'data: [DONE]\n\n';

/** The whole SSE body of a replay, `[DONE]` included. */
export function replayAsSse(
  completion: ChatCompletion,
  options: { includeUsage: boolean },
): string {
  return replayChunks(completion, options).map(sseFrame).join('') + SSE_DONE;
}

interface ToolCallDelta {
  index?: number;
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

/**
 * Reassembles a completion from the chunks of a finished stream, so a streamed deterministic
 * request can be cached too. Returns undefined when the stream did not finish (a choice without
 * finish_reason): a truncated answer must never be cached.
 */
export function completionFromChunks(chunks: ChatCompletionChunk[]): ChatCompletion | undefined {
  if (chunks.length === 0) return undefined;
  const first = chunks[0];
  const choices = new Map<
    number,
    {
      role: string;
      content: string;
      refusal?: string;
      toolCalls: ToolCallDelta[];
      finish: string | null;
    }
  >();
  let usage: ChatCompletion['usage'];
  for (const chunk of chunks) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices ?? []) {
      const acc = choices.get(choice.index) ?? {
        role: 'assistant',
        content: '',
        toolCalls: [],
        finish: null,
      };
      const delta = choice.delta ?? {};
      if (typeof delta.role === 'string') acc.role = delta.role;
      if (typeof delta.content === 'string') acc.content += delta.content;
      if (typeof delta.refusal === 'string') acc.refusal = (acc.refusal ?? '') + delta.refusal;
      for (const call of (delta.tool_calls as ToolCallDelta[] | undefined) ?? []) {
        const index = call.index ?? 0;
        const target = (acc.toolCalls[index] ??= { function: { name: '', arguments: '' } });
        if (call.id) target.id = call.id;
        if (call.type) target.type = call.type;
        if (call.function?.name) target.function!.name += call.function.name;
        if (call.function?.arguments) target.function!.arguments += call.function.arguments;
      }
      if (choice.finish_reason) acc.finish = choice.finish_reason;
      choices.set(choice.index, acc);
    }
  }
  if (choices.size === 0 || [...choices.values()].some((c) => c.finish === null)) return undefined;
  return {
    id: first.id,
    object: 'chat.completion',
    created: first.created,
    model: first.model,
    ...(first.system_fingerprint !== undefined
      ? { system_fingerprint: first.system_fingerprint }
      : {}),
    choices: [...choices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, c]) => ({
        index,
        message: {
          role: c.role,
          content: c.toolCalls.length > 0 && c.content === '' ? null : c.content,
          ...(c.refusal !== undefined ? { refusal: c.refusal } : {}),
          ...(c.toolCalls.length > 0
            ? {
                tool_calls: c.toolCalls.map((call) => ({
                  id: call.id,
                  type: call.type ?? 'function',
                  function: call.function,
                })),
              }
            : {}),
        },
        logprobs: null,
        finish_reason: c.finish,
      })),
    ...(usage ? { usage } : {}),
  };
}
