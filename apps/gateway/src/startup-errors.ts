import { PricingFileError } from '@app/credits';
import { EmbeddedPostgres } from '@app/database';
import { ProvidersFileError } from '@app/generation';

/**
 * A start that failed on a setting rather than a fault (EMBEDDED_PG_PORT held by another program,
 * a PROVIDERS_FILE entry that is wrong): the `config error:` lines a bad variable gets, without a
 * stack, or undefined for any other error. Shared by the gateway, the worker and the CLI.
 */
export function configErrorLines(err: unknown): string[] | undefined {
  if (EmbeddedPostgres.isStartRefusal(err)) return [`config error: ${err.message}`];
  if (err instanceof ProvidersFileError || err instanceof PricingFileError)
    return err.message.split('\n').map((line) => `config error: PROVIDERS_FILE: ${line}`);
  return undefined;
}
