import { Injectable, OnModuleInit } from '@nestjs/common';
import {
  AttemptOutcome,
  CredentialLease,
  CredentialSource,
  ProviderConfig,
  UpstreamAuth,
  UpstreamCredentials,
} from '@app/generation';
import { SessionOutcome } from './session-health.policy';
import { SessionPoolService } from './session-pool.service';

/** What an upstream attempt's outcome says about the credential it used. */
export function sessionOutcomeFor(outcome: AttemptOutcome): SessionOutcome {
  switch (outcome) {
    case 'success':
      return 'success';
    case 'auth_error':
      return 'unauthorized';
    case 'rate_limited':
      return 'rate_limited';
    case 'client_error':
    case 'aborted':
      return 'neutral';
    default:
      return 'failure';
  }
}

/**
 * Plugs the pool into generation's router: each attempt at a provider with
 * `session_auth: bearer|cookie` borrows the least recently used healthy session and reports how
 * the attempt went. With none, acquire throws 503 no_healthy_sessions and the router moves on to
 * the next provider (the client sees that error only when no provider is left).
 */
@Injectable()
export class SessionCredentialSource implements CredentialSource, OnModuleInit {
  constructor(
    private readonly pool: SessionPoolService,
    private readonly upstreamCredentials: UpstreamCredentials,
  ) {}

  onModuleInit(): void {
    this.upstreamCredentials.useSessionPool(this);
  }

  async acquire(provider: ProviderConfig): Promise<CredentialLease> {
    const lease = await this.pool.acquire(provider.name);
    const auth: UpstreamAuth =
      provider.sessionAuth === 'cookie'
        ? { type: 'cookie', cookie: lease.credential }
        : { type: 'bearer', token: lease.credential };
    return {
      auth,
      label: `session:${lease.id}`,
      // Successes return at once (batched); a failure is recorded before the client is answered.
      report: (report) => this.pool.report(lease.id, sessionOutcomeFor(report.outcome)),
    };
  }
}
