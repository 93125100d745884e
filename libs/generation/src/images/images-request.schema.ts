import { z } from 'zod';

export const imagesRequestSchema = z
  .object({
    model: z.string().min(1).max(256),
    prompt: z.string().min(1, 'must not be empty').max(32_000),
    n: z.number().int().min(1).max(10).nullable().optional(),
    size: z
      .string()
      .regex(/^(auto|\d{2,5}x\d{2,5})$/, 'expected WIDTHxHEIGHT such as 1024x1024, or auto')
      .nullable()
      .optional(),
    response_format: z.enum(['url', 'b64_json']).nullable().optional(),
    quality: z.string().max(32).nullable().optional(),
    style: z.string().max(32).nullable().optional(),
    background: z.string().max(32).nullable().optional(),
    output_format: z.string().max(16).nullable().optional(),
    output_compression: z.number().int().min(0).max(100).nullable().optional(),
    moderation: z.string().max(16).nullable().optional(),
    user: z.string().max(256).optional(),
  })
  .strict();

export type ImagesRequest = z.infer<typeof imagesRequestSchema>;
