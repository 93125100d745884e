import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { BootstrapKeysService } from './bootstrap-keys.service';
import { FirstStartService } from './first-start.service';

/** Boot-time work that needs the database: API_KEYS rows, then development credentials. */
@Injectable()
export class AuthBootstrapService implements OnApplicationBootstrap {
  constructor(
    private readonly bootstrapKeys: BootstrapKeysService,
    private readonly firstStart: FirstStartService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // Decided before the bootstrap user exists, which would make the database non-empty.
    const firstStart = await this.firstStart.isFirstStart();
    await this.bootstrapKeys.sync();
    if (firstStart) await this.firstStart.createDevelopmentCredentials();
  }
}
