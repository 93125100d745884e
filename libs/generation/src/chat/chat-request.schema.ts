import { z } from 'zod';

const MAX_MESSAGES = 10_000;
const text = z.string();
const contentPart = z.object({ type: z.string().min(1) }).passthrough();
const content = z.union([text, z.array(contentPart).min(1, 'must not be empty')]);
const name = z.string().min(1).max(256).optional();

/**
 * Messages keep unknown fields (clients echo back assistant messages with refusal, annotations,
 * audio…); only their role and content are checked.
 */
const message = z.discriminatedUnion(
  'role',
  [
    z.object({ role: z.literal('system'), content, name }).passthrough(),
    z.object({ role: z.literal('developer'), content, name }).passthrough(),
    z.object({ role: z.literal('user'), content, name }).passthrough(),
    z
      .object({
        role: z.literal('assistant'),
        content: content.nullable().optional(),
        name,
        tool_calls: z.array(z.object({}).passthrough()).optional(),
        function_call: z.object({}).passthrough().nullable().optional(),
      })
      .passthrough()
      .refine(
        (m) => (m.content !== undefined && m.content !== null) || m.tool_calls || m.function_call,
        { message: 'an assistant message needs content or tool_calls', path: ['content'] },
      ),
    z.object({ role: z.literal('tool'), content, tool_call_id: z.string().min(1) }).passthrough(),
    z
      .object({ role: z.literal('function'), content: text.nullable(), name: z.string().min(1) })
      .passthrough(),
  ],
  { message: 'role must be one of system, developer, user, assistant, tool, function' },
);

const nullableOptional = <T extends z.ZodTypeAny>(schema: T) => schema.nullable().optional();

/** OpenAI's bound for function names (and for prompt_cache_key and safety_identifier). */
const MAX_NAME = 64;

/** An entry of the deprecated `functions`, which the SDKs still type (tools replaced it). */
const legacyFunction = z
  .object({
    name: z.string().min(1).max(MAX_NAME),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();

/**
 * OpenAI's chat parameters, with their documented bounds. Unknown top-level fields are refused
 * (as OpenAI does) so a typo is an error, not a silently ignored setting.
 */
export const chatRequestSchema = z
  .object({
    model: z.string().min(1).max(256),
    messages: z.array(message).min(1, 'must contain at least one message').max(MAX_MESSAGES),
    stream: nullableOptional(z.boolean()),
    stream_options: nullableOptional(
      z
        .object({
          include_usage: z.boolean().optional(),
          include_obfuscation: z.boolean().optional(),
        })
        .strict(),
    ),
    temperature: nullableOptional(z.number().min(0).max(2)),
    top_p: nullableOptional(z.number().min(0).max(1)),
    n: nullableOptional(z.number().int().min(1).max(10)),
    max_tokens: nullableOptional(z.number().int().min(1).max(1_000_000)),
    max_completion_tokens: nullableOptional(z.number().int().min(1).max(1_000_000)),
    presence_penalty: nullableOptional(z.number().min(-2).max(2)),
    frequency_penalty: nullableOptional(z.number().min(-2).max(2)),
    stop: nullableOptional(z.union([z.string(), z.array(z.string()).max(4)])),
    seed: nullableOptional(z.number().int()),
    user: z.string().max(256).optional(),
    prompt_cache_key: nullableOptional(z.string().max(MAX_NAME)),
    safety_identifier: nullableOptional(z.string().max(MAX_NAME)),
    logit_bias: nullableOptional(z.record(z.string(), z.number().min(-100).max(100))),
    logprobs: nullableOptional(z.boolean()),
    top_logprobs: nullableOptional(z.number().int().min(0).max(20)),
    tools: z
      .array(z.object({ type: z.string().min(1) }).passthrough())
      .max(128)
      .optional(),
    tool_choice: z.union([z.string(), z.object({}).passthrough()]).optional(),
    parallel_tool_calls: z.boolean().optional(),
    functions: z.array(legacyFunction).min(1).max(128).optional(),
    function_call: z
      .union([z.enum(['none', 'auto']), z.object({ name: z.string().min(1) }).strict()])
      .optional(),
    response_format: z
      .object({ type: z.string().min(1) })
      .passthrough()
      .optional(),
    reasoning_effort: z.string().max(32).optional(),
    verbosity: nullableOptional(z.enum(['low', 'medium', 'high'])),
    metadata: z.record(z.string(), z.string()).optional(),
    store: nullableOptional(z.boolean()),
    service_tier: nullableOptional(z.string().max(32)),
    modalities: z.array(z.string()).optional(),
    audio: z.object({}).passthrough().optional(),
    prediction: z.object({}).passthrough().optional(),
    web_search_options: z.object({}).passthrough().optional(),
    // Widely supported by OpenAI-compatible servers (vLLM, llama.cpp, Ollama, OpenRouter).
    top_k: nullableOptional(z.number().int().min(0).max(1000)),
    min_p: nullableOptional(z.number().min(0).max(1)),
    repetition_penalty: nullableOptional(z.number().min(0).max(10)),
  })
  .strict();

export type ChatRequest = z.infer<typeof chatRequestSchema>;
