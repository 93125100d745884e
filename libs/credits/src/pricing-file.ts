import { existsSync, readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { z } from 'zod';
import { decimalPlaces, ModelPrice, PRICE_DECIMALS } from './pricing.math';

/** One price in credits; the same rule for the `pricing:` file section and PUT /admin/pricing. */
export const priceSchema = z
  // Only for a value of the wrong type: a message given as `message` here would also replace
  // the range messages below ("expected a number" for 10^12 + 1).
  .number({ error: (issue) => (issue.code === 'invalid_type' ? 'expected a number' : undefined) })
  .finite('must be a finite number')
  .min(0, 'must be at least 0')
  .max(1e12, 'must be at most 1000000000000')
  .refine((v) => decimalPlaces(v) <= PRICE_DECIMALS, {
    message: `must have at most ${PRICE_DECIMALS} decimal places`,
  });

/** `${VAR}` substitution (done by the providers-file loader) turns numbers into strings. */
const price = z.preprocess(
  (v) => (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : v),
  priceSchema,
);

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

/** Validates the `pricing:` entries; the first bad entry stops the boot, named. */
export function parsePricing(section: unknown, source: string): ModelPrice[] {
  if (section === undefined || section === null) return [];
  if (!Array.isArray(section)) throw new PricingFileError(`${source}: pricing must be a list`);
  const seen = new Set<string>();
  return section.map((raw, i) => {
    const parsed = priceEntrySchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new PricingFileError(
        `${source}: pricing[${i}]${issue.path.length ? `.${issue.path.join('.')}` : ''}: ${issue.message}`,
      );
    }
    if (seen.has(parsed.data.model))
      throw new PricingFileError(`${source}: pricing lists model ${parsed.data.model} twice`);
    seen.add(parsed.data.model);
    return toModelPrice(parsed.data);
  });
}

/**
 * Reads the `pricing:` section of a YAML file directly. The gateway takes the section from the
 * generation module's PROVIDERS_FILE loader instead (one read, same path resolution and
 * `${VAR}` substitution); this is for contexts without that module. A missing file means
 * "no prices"; a malformed section stops the boot, because silently free generations are
 * worse than a refused start.
 */
export function readPricingFile(path: string): { found: boolean; prices: ModelPrice[] } {
  if (!existsSync(path)) return { found: false, prices: [] };
  let doc: unknown;
  try {
    doc = load(readFileSync(path, 'utf8'));
  } catch (err) {
    // js-yaml's first line says what and where ("bad indentation (2:1)"); a code excerpt follows.
    const reason = (err as Error).message.split('\n')[0];
    throw new PricingFileError(`${path}: not valid YAML (${reason})`);
  }
  return {
    found: true,
    prices: parsePricing((doc as { pricing?: unknown } | null)?.pricing, path),
  };
}
