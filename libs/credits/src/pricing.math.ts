/**
 * Price arithmetic. Prices are decimals with up to 6 places (numeric(20,6) in Postgres); the
 * math runs on BigInt micro-credits so that 0.1 + 0.2 never rounds a charge up by accident,
 * and the total is rounded up to whole credits once, at the end.
 */

/** One model's prices, in credits. */
export interface ModelPrice {
  model: string;
  perRequest: number;
  per1kPromptTokens: number;
  per1kCompletionTokens: number;
  perImage: number;
  /** Image prices by size ("1024x1792": 80); a size not listed costs `perImage`. */
  perImageBySize: Record<string, number>;
}

export interface Usage {
  promptTokens?: number;
  completionTokens?: number;
  images?: number;
  /** Image size, for per-size prices. */
  size?: string;
}

/** When a chat request names no max_tokens, its reservation assumes this many (per choice). */
export const DEFAULT_MAX_COMPLETION_TOKENS = 4096;
/** A reservation never assumes more choices or images than this. */
export const MAX_CHOICES = 128;
/** Tokens assumed for an image sent inside a chat message. */
export const TOKENS_PER_INPUT_IMAGE = 1000;

const NANO_PER_CREDIT = 1_000_000_000n;

/** The places a price may have: numeric(20,6) in Postgres, micro-credits here. */
export const PRICE_DECIMALS = 6;

/**
 * Decimal places of `value` as written (its shortest round-trip form, which is what a JSON or
 * YAML number parsed to). A price with more than PRICE_DECIMALS must be refused, not stored:
 * Postgres and micros() would round it silently, and 0.0000001 would make a model free.
 */
export function decimalPlaces(value: number): number {
  const [mantissa, exponent = '0'] = String(value).split('e');
  const fraction = mantissa.split('.')[1] ?? '';
  return Math.max(0, fraction.length - Number(exponent));
}

function micros(value: number): bigint {
  if (!Number.isFinite(value) || value <= 0) return 0n;
  return BigInt(Math.round(value * 1_000_000));
}

function count(value: number | undefined): bigint {
  if (value === undefined || !Number.isFinite(value) || value <= 0) return 0n;
  return BigInt(Math.ceil(value));
}

/**
 * per_request + per_1k_prompt × p/1000 + per_1k_completion × c/1000 + per_image × n, rounded up
 * to whole credits. A request that produced nothing billable (no tokens, no images) still pays
 * per_request.
 */
export function priceOf(price: ModelPrice, usage: Usage): number {
  const imagePrice =
    usage.size !== undefined && price.perImageBySize[usage.size] !== undefined
      ? price.perImageBySize[usage.size]
      : price.perImage;
  // Units of 1e-9 credits: micro-credits × 1000, or micro-credits-per-1k-tokens × tokens.
  const nano =
    micros(price.perRequest) * 1000n +
    micros(price.per1kPromptTokens) * count(usage.promptTokens) +
    micros(price.per1kCompletionTokens) * count(usage.completionTokens) +
    micros(imagePrice) * 1000n * count(usage.images);
  const credits = (nano + NANO_PER_CREDIT - 1n) / NANO_PER_CREDIT;
  return credits > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(credits);
}

export function isFree(price: ModelPrice | undefined): boolean {
  if (!price) return true;
  return (
    price.perRequest <= 0 &&
    price.per1kPromptTokens <= 0 &&
    price.per1kCompletionTokens <= 0 &&
    price.perImage <= 0 &&
    Object.values(price.perImageBySize).every((v) => v <= 0)
  );
}

/**
 * A deliberately high token estimate for text (about 3 bytes per token; real tokenizers average
 * about 4 for English and ~1 token per CJK character, which is 3 bytes). Over-reserving is
 * harmless: the difference is refunded when the request settles.
 */
export function estimateTokens(text: string): number {
  if (text.length === 0) return 0;
  return Math.ceil(Buffer.byteLength(text, 'utf8') / 3);
}

function contentTokens(content: unknown): number {
  if (typeof content === 'string') return estimateTokens(content);
  if (Array.isArray(content)) {
    let total = 0;
    for (const part of content) {
      if (part && typeof part === 'object') {
        const p = part as { type?: unknown; text?: unknown };
        if (typeof p.text === 'string') total += estimateTokens(p.text);
        else if (p.type === 'image_url' || p.type === 'input_image')
          total += TOKENS_PER_INPUT_IMAGE;
        else total += estimateTokens(JSON.stringify(part));
      }
    }
    return total;
  }
  if (content === null || content === undefined) return 0;
  return estimateTokens(JSON.stringify(content));
}

/** Prompt tokens of a chat request: message contents, names, tool calls and tool schemas. */
export function estimatePromptTokens(body: Record<string, unknown>): number {
  let total = 3;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const message of messages) {
    total += 4;
    if (!message || typeof message !== 'object') continue;
    const m = message as Record<string, unknown>;
    total += contentTokens(m.content);
    if (typeof m.name === 'string') total += estimateTokens(m.name);
    if (m.tool_calls !== undefined) total += estimateTokens(JSON.stringify(m.tool_calls));
  }
  for (const extra of ['tools', 'functions', 'response_format']) {
    if (body[extra] !== undefined) total += estimateTokens(JSON.stringify(body[extra]));
  }
  return total;
}

function positiveInt(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

/** The most a chat completion request can use: its prompt, and max_tokens for each of n choices. */
export function maxChatUsage(body: Record<string, unknown>): Usage {
  const maxTokens =
    positiveInt(body.max_completion_tokens) ??
    positiveInt(body.max_tokens) ??
    DEFAULT_MAX_COMPLETION_TOKENS;
  const choices = Math.min(positiveInt(body.n) ?? 1, MAX_CHOICES);
  return { promptTokens: estimatePromptTokens(body), completionTokens: maxTokens * choices };
}

/** The most an image generation request can use: n images of its size. */
export function maxImageUsage(body: Record<string, unknown>): Usage {
  const images = Math.min(positiveInt(body.n) ?? 1, MAX_CHOICES);
  return { images, size: typeof body.size === 'string' ? body.size : undefined };
}
