import { counter, gauge } from '@app/observability';

export const breakerState = gauge(
  'gateway_circuit_breaker_state',
  'Circuit breaker state per provider: 0 closed, 1 open, 2 half_open',
  ['breaker'],
);

export const breakerTransitions = counter(
  'gateway_circuit_breaker_transitions_total',
  'Circuit breaker state changes made by this replica',
  ['breaker', 'from', 'to'],
);

export const STATE_VALUE = { closed: 0, open: 1, half_open: 2 } as const;
