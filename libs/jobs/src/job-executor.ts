import type { Principal } from '@app/auth';
import type { Usage } from '@app/credits';
import type { JobType } from './jobs.types';

/** Who submitted the job, carried in the queue message so the worker acts on their behalf. */
export type JobPrincipal = Principal;

/**
 * Set in a generation context's `state` when a job worker runs it. Its credits were reserved at
 * submit (and are settled by the jobs module) and its rate limit was counted at submit, so
 * pipeline plugins that bill or count must skip a context that carries it. A plain string (not
 * a Symbol exported from here) so that plugins can test it without importing libs/jobs.
 */
export const PREPAID_JOB_STATE = 'switchyard:prepaid-job';

export interface GenerationResult {
  /** The response body the synchronous endpoint would have answered. */
  result: unknown;
  model: string;
  provider?: string;
  /** Answered from the response cache (billed at CACHE_HIT_PRICE, like the sync path). */
  cached: boolean;
  usage: Usage;
}

/** The job a worker hands to the executor. */
export interface JobRun {
  id: string;
  /** The submit's request id (jobRequestId): the generation's request id, on its log lines. */
  requestId: string;
  type: JobType;
  request: Record<string, unknown>;
}

/**
 * What a job runs: the same generation as POST /v1/chat/completions and
 * /v1/images/generations, without billing (the job reserved its credits at submit).
 */
export abstract class JobExecutor {
  /** Throws the 4xx the synchronous endpoint would (bad body, unknown model) before anything is queued. */
  abstract validate(type: JobType, request: Record<string, unknown>): void | Promise<void>;

  abstract execute(
    job: JobRun,
    principal: JobPrincipal,
    signal: AbortSignal,
  ): Promise<GenerationResult>;
}
