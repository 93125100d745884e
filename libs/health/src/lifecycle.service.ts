import { Injectable } from '@nestjs/common';

/** Set on SIGTERM so readiness answers 503 while in-flight requests finish. */
@Injectable()
export class LifecycleService {
  private shuttingDown = false;

  beginShutdown(): void {
    this.shuttingDown = true;
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }
}
