import type { FastifyRequest } from 'fastify';

/**
 * What a module learned while handling a request (who, which model and provider, usage,
 * credits). The HTTP hook puts it on the request's log line and in request_logs.
 */
export interface RequestAnnotations {
  userId?: string;
  apiKeyId?: string;
  model?: string;
  provider?: string;
  promptTokens?: number;
  completionTokens?: number;
  cached?: boolean;
  credits?: number;
  error?: string;
}

const KEY = Symbol.for('switchyard.requestAnnotations');

type Annotated = { [KEY]?: RequestAnnotations };

/** Accepts a Fastify request or its raw IncomingMessage (what Nest's @Req() may hand out). */
export function annotateRequest(
  request: FastifyRequest | object,
  fields: RequestAnnotations,
): void {
  const target = ((request as FastifyRequest).raw ?? request) as Annotated;
  target[KEY] = { ...target[KEY], ...fields };
}

export function requestAnnotations(request: FastifyRequest): RequestAnnotations {
  return (request.raw as unknown as Annotated)[KEY] ?? {};
}
