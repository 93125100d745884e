export { CircuitBreakerModule } from './circuit-breaker.module';
export { CircuitBreakerService } from './circuit-breaker.service';
export type { BreakerPermit } from './circuit-breaker.service';
export type { BreakerOutcome, BreakerState, BreakerView } from './breaker.types';
export { circuitOpenError } from './circuit-breaker.errors';
