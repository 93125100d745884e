export { ApiError } from './api-error';
export type { ApiErrorType } from './api-error';
export { inputIssueMessage } from './input-issue-message';
export type { InputIssueOptions } from './input-issue-message';
export { ApiExceptionFilter, toEnvelope } from './api-exception.filter';
export { rawHttpAnswer } from './raw-http-answer';
export { createLogger, scrubSecrets, redactLogFields } from './logger';
export { PinoNestLogger } from './nest-logger';
export {
  installHttpObservability,
  recordAfter,
  recordUnparsedRequest,
  recordUpgradeRequest,
  requestIdFrom,
  uuidV7,
} from './http-observability';
export type { CompletedRequest, UnparsedRequest } from './http-observability';
export { annotateRequest, requestAnnotations } from './request-annotations';
export type { RequestAnnotations } from './request-annotations';
export { counter, gauge, histogram } from './metrics';
export { METRICS_AUTH_REFUSAL, metricsAuthorized } from './metrics.controller';
export { ObservabilityModule } from './observability.module';
export { LOGGER } from './observability.tokens';
