/**
 * The OpenAI shapes the cache reads and writes. Loose on purpose: the cache stores whatever the
 * upstream answered and only needs these fields to key, replay and assemble responses.
 */
export interface ChatMessage {
  role: string;
  content?: unknown;
  name?: string;
  tool_calls?: unknown[];
  tool_call_id?: string;
  [field: string]: unknown;
}

export interface ChatCompletionChoice {
  index: number;
  message: ChatMessage;
  finish_reason: string | null;
  logprobs?: unknown;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: ChatCompletionChoice[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } & Record<
    string,
    unknown
  >;
  system_fingerprint?: string | null;
  [field: string]: unknown;
}

/** A chat request as the client sent it (validated by the generation module). */
export interface ChatRequestBody {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  temperature?: number | null;
  [field: string]: unknown;
}
