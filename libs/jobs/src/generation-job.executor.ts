import { Injectable } from '@nestjs/common';
import { ApiError } from '@app/observability';
import { GenerationResult, JobExecutor, JobPrincipal } from './job-executor';
import { JobType } from './jobs.types';

/** Runs a job through libs/generation (wired when its service lands). */
@Injectable()
export class GenerationJobExecutor extends JobExecutor {
  validate(_type: JobType, _request: Record<string, unknown>): void {}

  async execute(
    _type: JobType,
    _request: Record<string, unknown>,
    _principal: JobPrincipal,
    _signal: AbortSignal,
  ): Promise<GenerationResult> {
    throw ApiError.unavailable('generation is not available yet');
  }
}
