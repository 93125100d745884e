/**
 * Rough token count (about 4 characters per token for English). Used only when the upstream
 * gives no usage: the mock provider, and a stream cut before its usage chunk.
 */
export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}

/** The text of a chat request's messages, for a prompt-token estimate. */
export function messagesText(messages: unknown): string {
  if (!Array.isArray(messages)) return '';
  const parts: string[] = [];
  for (const m of messages as { content?: unknown }[]) {
    if (typeof m?.content === 'string') parts.push(m.content);
    else if (Array.isArray(m?.content))
      for (const part of m.content as { text?: unknown }[])
        if (typeof part?.text === 'string') parts.push(part.text);
  }
  return parts.join('\n');
}
