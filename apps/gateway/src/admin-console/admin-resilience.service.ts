import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '@app/config';
import { CircuitBreakerService } from '@app/circuit-breaker';
import { DatabaseService } from '@app/database';
import { JobsService } from '@app/jobs';
import { RedisService } from '@app/redis';
import { SessionPoolService } from '@app/sessions';
import { queueView, sessionsView } from './admin-stats.view';

/**
 * GET /admin/resilience (DESIGN §5): the state of every degradation path in one answer —
 * breakers, session pool, job queue, Redis mode and the database pool — for the on-call
 * engineer deciding whether the gateway is limping and why. Each section is read through its
 * module's service; one that cannot be read right now is null and named in `unavailable`.
 */
@Injectable()
export class AdminResilienceService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly breakers: CircuitBreakerService,
    private readonly sessions: SessionPoolService,
    private readonly jobs: JobsService,
    private readonly redis: RedisService,
    private readonly database: DatabaseService,
  ) {}

  async snapshot() {
    const unavailable: string[] = [];
    const section = async <T>(name: string, read: () => Promise<T>): Promise<T | null> => {
      try {
        return await read();
      } catch {
        unavailable.push(name);
        return null;
      }
    };
    const [breakers, sessions, queue] = await Promise.all([
      section('breakers', () => this.breakers.list()),
      section('sessions', async () => sessionsView(await this.sessions.counts())),
      section('queue', async () => queueView(await this.jobs.depth())),
    ]);
    const redisMode = this.redis.mode;
    return {
      generated_at: new Date().toISOString(),
      breakers,
      sessions,
      queue,
      redis: {
        mode: redisMode,
        fallback_active: redisMode === 'memory-fallback',
        required: this.config.redis.required,
        rate_limit_on_redis_failure: this.config.rateLimit.onRedisFailure,
      },
      database: { reachable: this.database.isReachable, pool: this.database.poolStats() },
      unavailable: unavailable.sort(),
    };
  }
}
