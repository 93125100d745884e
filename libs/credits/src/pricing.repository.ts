import { Injectable } from '@nestjs/common';
import { DatabaseService } from '@app/database';
import { ModelPrice } from './pricing.math';

export type PriceSource = 'file' | 'admin';

export interface StoredPrice extends ModelPrice {
  source: PriceSource;
  updatedAt: Date;
}

interface PriceRow {
  model: string;
  per_request: string;
  per_1k_prompt_tokens: string;
  per_1k_completion_tokens: string;
  per_image: string;
  per_image_by_size: Record<string, number | string>;
  source: PriceSource;
  updated_at: Date;
}

function toPrice(row: PriceRow): StoredPrice {
  return {
    model: row.model,
    perRequest: Number(row.per_request),
    per1kPromptTokens: Number(row.per_1k_prompt_tokens),
    per1kCompletionTokens: Number(row.per_1k_completion_tokens),
    perImage: Number(row.per_image),
    perImageBySize: Object.fromEntries(
      Object.entries(row.per_image_by_size ?? {}).map(([size, value]) => [size, Number(value)]),
    ),
    source: row.source,
    updatedAt: row.updated_at,
  };
}

const UPSERT = `
  INSERT INTO pricing (model, per_request, per_1k_prompt_tokens, per_1k_completion_tokens,
                       per_image, per_image_by_size, source, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, now())
  ON CONFLICT (model) DO UPDATE SET
    per_request = EXCLUDED.per_request,
    per_1k_prompt_tokens = EXCLUDED.per_1k_prompt_tokens,
    per_1k_completion_tokens = EXCLUDED.per_1k_completion_tokens,
    per_image = EXCLUDED.per_image,
    per_image_by_size = EXCLUDED.per_image_by_size,
    source = EXCLUDED.source,
    updated_at = now()`;

function params(price: ModelPrice, source: PriceSource): unknown[] {
  return [
    price.model,
    price.perRequest,
    price.per1kPromptTokens,
    price.per1kCompletionTokens,
    price.perImage,
    JSON.stringify(price.perImageBySize),
    source,
  ];
}

@Injectable()
export class PricingRepository {
  constructor(private readonly db: DatabaseService) {}

  async list(): Promise<StoredPrice[]> {
    const rows = await this.db.query<PriceRow>(`SELECT * FROM pricing ORDER BY model`);
    return rows.map(toPrice);
  }

  async find(model: string): Promise<StoredPrice | undefined> {
    const rows = await this.db.query<PriceRow>(`SELECT * FROM pricing WHERE model = $1`, [model]);
    return rows[0] ? toPrice(rows[0]) : undefined;
  }

  /**
   * Makes the file's prices current: file rows follow the file (and go when the file drops
   * them); a price an admin edited at run time stays until an admin changes it again.
   */
  async syncFromFile(prices: ModelPrice[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      for (const price of prices) {
        await tx.query(`${UPSERT} WHERE pricing.source = 'file'`, params(price, 'file'));
      }
      await tx.query(
        `DELETE FROM pricing WHERE source = 'file' AND NOT (model = ANY($1::text[]))`,
        [prices.map((p) => p.model)],
      );
    }, 'pricing_sync');
  }

  async upsertAdmin(price: ModelPrice): Promise<StoredPrice> {
    await this.db.query(UPSERT, params(price, 'admin'));
    return (await this.find(price.model))!;
  }

  async delete(model: string): Promise<boolean> {
    const rows = await this.db.query<{ model: string }>(
      `DELETE FROM pricing WHERE model = $1 RETURNING model`,
      [model],
    );
    return rows.length > 0;
  }
}
