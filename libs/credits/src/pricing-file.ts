import { existsSync, readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { z } from 'zod';
import { ModelPrice } from './pricing.math';

const price = z.number({ message: 'expected a number' }).finite().min(0).max(1e12);

/** One entry of the `pricing:` section (credits; everything optional defaults to 0). */
export const priceEntrySchema = z
  .object({
    model: z.string().trim().min(1).max(200),
    per_request: price.optional(),
    per_1k_prompt_tokens: price.optional(),
    per_1k_completion_tokens: price.optional(),
    per_image: price.optional(),
    per_image_by_size: z.record(z.string().min(1).max(40), price).optional(),
  })
  .strict();

export type PriceEntry = z.infer<typeof priceEntrySchema>;

export function toModelPrice(entry: PriceEntry): ModelPrice {
  return {
    model: entry.model,
    perRequest: entry.per_request ?? 0,
    per1kPromptTokens: entry.per_1k_prompt_tokens ?? 0,
    per1kCompletionTokens: entry.per_1k_completion_tokens ?? 0,
    perImage: entry.per_image ?? 0,
    perImageBySize: entry.per_image_by_size ?? {},
  };
}

export class PricingFileError extends Error {}

/**
 * Reads the `pricing:` section of PROVIDERS_FILE. A missing file means "no prices" (every model
 * free, which the boot log says); a malformed section stops the boot with the entry named,
 * because silently free generations are worse than a refused start.
 */
export function readPricingFile(path: string): { found: boolean; prices: ModelPrice[] } {
  if (!existsSync(path)) return { found: false, prices: [] };
  let doc: unknown;
  try {
    doc = load(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new PricingFileError(`${path}: not valid YAML (${(err as Error).message})`);
  }
  const section = (doc as { pricing?: unknown } | null)?.pricing;
  if (section === undefined || section === null) return { found: true, prices: [] };
  if (!Array.isArray(section)) throw new PricingFileError(`${path}: pricing must be a list`);
  const seen = new Set<string>();
  const prices = section.map((raw, i) => {
    const parsed = priceEntrySchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new PricingFileError(
        `${path}: pricing[${i}]${issue.path.length ? `.${issue.path.join('.')}` : ''}: ${issue.message}`,
      );
    }
    if (seen.has(parsed.data.model))
      throw new PricingFileError(`${path}: pricing lists model ${parsed.data.model} twice`);
    seen.add(parsed.data.model);
    return toModelPrice(parsed.data);
  });
  return { found: true, prices };
}
