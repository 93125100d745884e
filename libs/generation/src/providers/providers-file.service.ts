import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { loadProvidersFile, ProvidersFile } from './providers-file';

/**
 * PROVIDERS_FILE, read and validated once at boot. Generation uses `providers`; the credits
 * module may read `pricing` from here instead of parsing the file again.
 */
@Injectable()
export class ProvidersFileService {
  readonly file: ProvidersFile;

  constructor(@Inject(APP_CONFIG) config: AppConfig, @Inject(LOGGER) logger: Logger) {
    const { file, missingVars } = loadProvidersFile(config.providersFile, config.lookupEnv);
    this.file = file;
    if (missingVars.length > 0)
      logger.warn(
        { variables: missingVars, file: file.path },
        'PROVIDERS_FILE refers to unset environment variables; they were replaced by empty values',
      );
  }

  get providers(): ProvidersFile['providers'] {
    return this.file.providers;
  }

  get pricing(): ProvidersFile['pricing'] {
    return this.file.pricing;
  }
}
