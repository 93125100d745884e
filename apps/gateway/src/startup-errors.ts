import { PricingFileError } from '@app/credits';
import { EmbeddedPostgres } from '@app/database';
import { ProvidersFileError } from '@app/generation';

/** The listen address named by PORT/WORKER_PORT and HOST cannot be used; the message names it. */
class ListenRefusal extends Error {}

/**
 * What a failed listen means for the operator: the setting to change, or the error itself when
 * it is not about the address. Only for errors of the listen call (a DATABASE_URL host that does
 * not resolve fails with the same codes elsewhere).
 */
export function listenRefusal(err: unknown, portVariable: 'PORT' | 'WORKER_PORT'): unknown {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const where = `${e.address}:${e.port}`;
  switch (e.code) {
    case 'EADDRINUSE':
      return new ListenRefusal(`${portVariable}: ${where} is already in use by another program`);
    case 'EACCES':
      return new ListenRefusal(
        `${portVariable}: listening on ${where} is not permitted (ports below 1024 need privileges)`,
      );
    case 'EADDRNOTAVAIL':
      return new ListenRefusal(`HOST: ${e.address} is not an address of this machine`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ListenRefusal(`HOST: ${e.hostname} does not resolve to an address`);
    default:
      return err;
  }
}

/**
 * A start that failed on a setting rather than a fault (EMBEDDED_PG_PORT held by another program,
 * a PROVIDERS_FILE entry that is wrong, a port in use): the `config error:` lines a bad variable
 * gets, without a stack, or undefined for any other error. Shared by the gateway, the worker and
 * the CLI.
 */
export function configErrorLines(err: unknown): string[] | undefined {
  if (EmbeddedPostgres.isStartRefusal(err) || err instanceof ListenRefusal)
    return [`config error: ${err.message}`];
  if (err instanceof ProvidersFileError || err instanceof PricingFileError)
    return err.message.split('\n').map((line) => `config error: PROVIDERS_FILE: ${line}`);
  return undefined;
}
