import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Post,
  Req,
  UseGuards,
} from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ApiKeyGuard, CurrentPrincipal, RequireScopes } from '@app/auth';
import type { Principal } from '@app/auth';
import { parseIdempotencyKey } from '@app/credits';
import { JobsService } from './jobs.service';
import { JobView } from './jobs.types';
import { parseSubmit } from './submit-job.dto';

/**
 * Async generation jobs (DESIGN §4); per-key rate limits apply through the global interceptor.
 * Updates arrive over the WebSocket at /v1/ws.
 */
@Controller('v1/generations')
@UseGuards(ApiKeyGuard)
@RequireScopes('jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @HttpCode(202)
  submit(
    @CurrentPrincipal() principal: Principal,
    @Body() body: unknown,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Req() request: FastifyRequest,
  ): Promise<JobView> {
    return this.jobs.submit(
      principal,
      parseSubmit(body),
      parseIdempotencyKey(idempotencyKey),
      String(request.id),
    );
  }

  @Get(':id')
  get(@CurrentPrincipal() principal: Principal, @Param('id') id: string): Promise<JobView> {
    return this.jobs.get(principal, id);
  }

  @Delete(':id')
  cancel(@CurrentPrincipal() principal: Principal, @Param('id') id: string): Promise<JobView> {
    return this.jobs.cancel(principal, id);
  }
}
