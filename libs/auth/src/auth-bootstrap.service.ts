import { Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '@app/config';
import { BootstrapKeysService } from './bootstrap-keys.service';
import { FirstStartService } from './first-start.service';

/** Boot-time work that needs the database: API_KEYS rows, then development credentials. */
@Injectable()
export class AuthBootstrapService implements OnApplicationBootstrap {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly bootstrapKeys: BootstrapKeysService,
    private readonly firstStart: FirstStartService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // The CLI boots these modules too, with the environment of whatever shell runs it: mirroring
    // that shell's API_KEYS (often unset) would revoke the gateway's bootstrap keys for good.
    if (!this.config.backgroundTasks) return;
    // Decided before the bootstrap user exists, which would make the database non-empty.
    const firstStart = await this.firstStart.isFirstStart();
    await this.bootstrapKeys.sync();
    if (firstStart) await this.firstStart.createDevelopmentCredentials();
  }
}
