import { Injectable } from '@nestjs/common';

export type ComponentStatus = 'up' | 'down' | 'degraded';

export interface ComponentReport {
  name: string;
  status: ComponentStatus;
  latency_ms: number | null;
  details: Record<string, unknown>;
}

export type ComponentCheck = () => Promise<
  Omit<ComponentReport, 'latency_ms'> | Omit<ComponentReport, 'latency_ms'>[]
>;

/**
 * Modules add their own components to /health/detailed (breakers, session pool, job queue)
 * without the health module knowing their internals.
 */
@Injectable()
export class HealthRegistry {
  private readonly checks = new Map<string, ComponentCheck>();

  register(name: string, check: ComponentCheck): void {
    this.checks.set(name, check);
  }

  entries(): [string, ComponentCheck][] {
    return [...this.checks.entries()];
  }
}
