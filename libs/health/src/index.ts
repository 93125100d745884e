export { HealthModule } from './health.module';
export { HealthRegistry } from './health-registry';
export type { ComponentReport, ComponentCheck, ComponentStatus } from './health-registry';
export { LifecycleService } from './lifecycle.service';
