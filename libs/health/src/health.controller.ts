import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import {
  HealthCheck,
  HealthCheckService,
  HealthIndicatorFunction,
  HealthIndicatorService,
} from '@nestjs/terminus';
import { APP_CONFIG, AppConfig } from '@app/config';
import { DatabaseService } from '@app/database';
import { RedisService } from '@app/redis';
import { ComponentReport, HealthRegistry } from './health-registry';
import { LifecycleService } from './lifecycle.service';

const VERSION = process.env.npm_package_version ?? '0.1.0';
const CHECK_TIMEOUT_MS = 1500;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref(),
    ),
  ]);
}

@Controller('health')
export class HealthController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly database: DatabaseService,
    private readonly redis: RedisService,
    private readonly registry: HealthRegistry,
    private readonly lifecycle: LifecycleService,
  ) {}

  @Get()
  root() {
    return {
      status: 'ok',
      timestamp: new Date().toISOString(),
      uptime: process.uptime(),
      version: VERSION,
    };
  }

  @Get('live')
  live() {
    return { status: 'ok', timestamp: new Date().toISOString() };
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    const checks: HealthIndicatorFunction[] = [
      async () => {
        const indicator = this.indicators.check('lifecycle');
        if (this.lifecycle.isShuttingDown) return indicator.down({ message: 'shutting down' });
        return indicator.up();
      },
      () => this.databaseIndicator(),
    ];
    if (this.config.redis.required) checks.push(() => this.redisIndicator());
    return this.health.check(checks);
  }

  private async databaseIndicator() {
    const indicator = this.indicators.check('database');
    try {
      const latency = await withTimeout(this.database.ping(CHECK_TIMEOUT_MS), CHECK_TIMEOUT_MS);
      return indicator.up({ latency_ms: Math.round(latency * 100) / 100 });
    } catch (err) {
      return indicator.down({ message: (err as Error).message });
    }
  }

  private async redisIndicator() {
    const indicator = this.indicators.check('redis');
    try {
      const latency = await withTimeout(this.redis.ping(), CHECK_TIMEOUT_MS);
      return indicator.up({ latency_ms: Math.round(latency * 100) / 100 });
    } catch (err) {
      return indicator.down({ message: (err as Error).message, mode: this.redis.mode });
    }
  }

  @Get('detailed')
  async detailed() {
    const components: ComponentReport[] = [
      await this.databaseComponent(),
      await this.redisComponent(),
    ];
    for (const [name, check] of this.registry.entries()) {
      const started = performance.now();
      try {
        const reports = await withTimeout(check(), CHECK_TIMEOUT_MS);
        const latency = Math.round((performance.now() - started) * 100) / 100;
        for (const report of Array.isArray(reports) ? reports : [reports])
          components.push({ ...report, latency_ms: latency });
      } catch (err) {
        components.push({
          name,
          status: 'down',
          latency_ms: null,
          details: { error: (err as Error).message },
        });
      }
    }
    const database = components[0];
    const redisDown = components[1].status === 'down';
    let status: 'ok' | 'degraded' | 'down' = 'ok';
    if (
      database.status === 'down' ||
      this.lifecycle.isShuttingDown ||
      (redisDown && this.config.redis.required)
    )
      status = 'down';
    else if (components.some((c) => c.status !== 'up')) status = 'degraded';
    const body = { status, timestamp: new Date().toISOString(), version: VERSION, components };
    if (status === 'down') throw new ServiceUnavailableException(body);
    return body;
  }

  private async databaseComponent(): Promise<ComponentReport> {
    try {
      const latency = await withTimeout(this.database.ping(CHECK_TIMEOUT_MS), CHECK_TIMEOUT_MS);
      return {
        name: 'database',
        status: 'up',
        latency_ms: Math.round(latency * 100) / 100,
        details: { pool: this.database.poolStats() },
      };
    } catch (err) {
      return {
        name: 'database',
        status: 'down',
        latency_ms: null,
        details: { error: (err as Error).message },
      };
    }
  }

  private async redisComponent(): Promise<ComponentReport> {
    const mode = this.redis.mode;
    if (mode === 'memory')
      return {
        name: 'redis',
        status: 'up',
        latency_ms: null,
        details: { mode, note: 'REDIS_URL not set; state kept in process memory' },
      };
    try {
      const latency = await withTimeout(this.redis.ping(), CHECK_TIMEOUT_MS);
      return {
        name: 'redis',
        status: 'up',
        latency_ms: Math.round(latency * 100) / 100,
        details: { mode, fallback_active: false },
      };
    } catch (err) {
      return {
        name: 'redis',
        status: this.config.redis.required ? 'down' : 'degraded',
        latency_ms: null,
        details: { mode, fallback_active: true, error: (err as Error).message },
      };
    }
  }
}
