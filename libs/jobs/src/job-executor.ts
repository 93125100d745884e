import type { Principal } from '@app/auth';
import type { Usage } from '@app/credits';
import type { JobType } from './jobs.types';

/** Who submitted the job, carried in the queue message so the worker can act on their behalf. */
export type JobPrincipal = Pick<
  Principal,
  'userId' | 'apiKeyId' | 'keyPrefix' | 'scopes' | 'cacheScope'
>;

export interface GenerationResult {
  /** The response body the synchronous endpoint would have answered. */
  result: unknown;
  model: string;
  provider?: string;
  usage: Usage;
}

/**
 * What a job runs: the same generation as POST /v1/chat/completions and
 * /v1/images/generations, without billing (the job reserved its credits at submit).
 */
export abstract class JobExecutor {
  /** Throws the 4xx the synchronous endpoint would (bad body, unknown model) before anything is queued. */
  abstract validate(type: JobType, request: Record<string, unknown>): void | Promise<void>;

  abstract execute(
    type: JobType,
    request: Record<string, unknown>,
    principal: JobPrincipal,
    signal: AbortSignal,
  ): Promise<GenerationResult>;
}
