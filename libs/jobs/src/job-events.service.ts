import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import { JobEvent } from './jobs.types';

const EVENTS_CHANNEL = 'jobs:events';
const CANCEL_CHANNEL = 'jobs:cancel';

/**
 * Job status changes and cancel requests, broadcast to every replica over Redis pub/sub (in
 * process only when Redis is absent or down: then a socket hears about jobs run by its own
 * replica, and clients fall back to GET /v1/generations/:id).
 */
@Injectable()
export class JobEvents {
  constructor(
    private readonly redis: RedisService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** `requestId`: the job's (jobRequestId), for the log line when the event is lost. */
  async publish(event: JobEvent, requestId?: string): Promise<void> {
    await this.redis
      .publish(EVENTS_CHANNEL, JSON.stringify(event))
      .catch((err) =>
        this.logger.warn(
          { err: (err as Error).message, job_id: event.id, request_id: requestId },
          'job event lost',
        ),
      );
  }

  onEvent(handler: (event: JobEvent) => void): void {
    this.redis.subscribe(EVENTS_CHANNEL, (message) => {
      const event = parse<JobEvent>(message);
      if (event && typeof event.userId === 'string' && typeof event.id === 'string') handler(event);
    });
  }

  /** Asks whichever replica runs the job to abort its upstream call. */
  async requestCancel(jobId: string): Promise<void> {
    await this.redis.publish(CANCEL_CHANNEL, JSON.stringify({ id: jobId })).catch(() => undefined);
  }

  onCancel(handler: (jobId: string) => void): void {
    this.redis.subscribe(CANCEL_CHANNEL, (message) => {
      const body = parse<{ id?: unknown }>(message);
      if (body && typeof body.id === 'string') handler(body.id);
    });
  }
}

function parse<T>(message: string): T | undefined {
  try {
    return JSON.parse(message) as T;
  } catch {
    return undefined;
  }
}
