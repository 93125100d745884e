import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { BreakerOutcome, BreakerPermit } from '@app/circuit-breaker';
import { LOGGER } from '@app/observability';
import { upstreamDuration, upstreamRequests } from '../generation.metrics';
import { AttemptOutcome, BREAKER_FAILURES } from '../upstream/upstream.types';
import { AttemptReport, CredentialLease } from './upstream-credentials.service';

export function breakerOutcome(outcome: AttemptOutcome): BreakerOutcome {
  if (outcome === 'success' || outcome === 'client_error') return 'success';
  return BREAKER_FAILURES.has(outcome) ? 'failure' : 'neutral';
}

export interface FinishedAttempt extends AttemptReport {
  /** The job the attempt ran for: logged, not reported to listeners. */
  jobId?: string;
  permit: BreakerPermit;
  credential?: CredentialLease;
  message?: string;
}

/**
 * The one place an upstream attempt's outcome goes: the provider's circuit breaker, the session
 * that lent the credential, metrics, the log, and any listener (e.g. per-provider stats).
 */
@Injectable()
export class AttemptRecorder {
  private readonly listeners: ((report: AttemptReport) => void)[] = [];

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  onAttempt(listener: (report: AttemptReport) => void): void {
    this.listeners.push(listener);
  }

  /** Resolves once the breaker has counted the outcome, so the next request sees it. */
  async record(attempt: FinishedAttempt): Promise<void> {
    const { permit, credential, message, jobId, ...report } = attempt;
    upstreamRequests.inc({
      provider: report.provider,
      model: report.model,
      outcome: report.outcome,
    });
    upstreamDuration.observe({ provider: report.provider }, report.latencyMs / 1000);
    try {
      await credential?.report(report);
    } catch (err) {
      this.logger.warn(
        { err, provider: report.provider, request_id: report.requestId, job_id: jobId },
        'credential report failed',
      );
    }
    for (const listener of this.listeners) listener(report);
    await permit.release(breakerOutcome(report.outcome), report.latencyMs);
    if (report.outcome !== 'success') {
      const level =
        report.outcome === 'aborted' || report.outcome === 'client_error' ? 'info' : 'warn';
      this.logger[level](
        {
          request_id: report.requestId,
          job_id: jobId,
          provider: report.provider,
          model: report.model,
          outcome: report.outcome,
          upstream_status: report.status,
          latency_ms: Math.round(report.latencyMs),
          credential: credential?.label,
        },
        `upstream attempt failed: ${message ?? report.outcome}`,
      );
    }
  }
}
