import { z } from 'zod';

/**
 * Field rules shared by the admin API and the CLI, so that both refuse the same values with the
 * same words (the database's CHECK constraints are the last line, not the message a user reads).
 */
export const usernameField = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9._@-]+$/, 'letters, digits and . _ @ - only');

/** A key's requests per minute or per hour. */
export const rateLimitField = z.number().int().min(1).max(1_000_000_000);

/** A user's base quota (its starting balance). */
export const baseQuotaField = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
