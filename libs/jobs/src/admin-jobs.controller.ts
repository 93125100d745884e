import {
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  UseGuards,
} from '@nestjs/common';
import { AdminGuard, AuditService, CurrentAdmin, requireUuid } from '@app/auth';
import type { AdminIdentity } from '@app/auth';
import { APP_CONFIG, AppConfig } from '@app/config';
import { parseLimit } from './job-cursor';
import { ADMIN_CLEAR_MESSAGE, JobsService } from './jobs.service';
import { parseClearStuck, parseStatus } from './submit-job.dto';

/** Seed 004's queue procedures as admin endpoints: look at the queue, clear stuck jobs. */
@Controller('admin/jobs')
@UseGuards(AdminGuard)
export class AdminJobsController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly jobs: JobsService,
    private readonly audit: AuditService,
  ) {}

  @Get()
  list(
    @Query('status') status?: string,
    @Query('user_id') userId?: string,
    @Query('limit') limit?: string,
    @Query('cursor') cursor?: string,
  ) {
    return this.jobs.adminList(
      {
        status: parseStatus(status),
        userId: userId === undefined || userId === '' ? undefined : requireUuid(userId, 'user_id'),
      },
      parseLimit(limit),
      cursor,
    );
  }

  @Get(':id')
  get(@Param('id') id: string) {
    return this.jobs.adminGet(id);
  }

  @Post('clear-stuck')
  @HttpCode(200)
  async clearStuck(@CurrentAdmin() admin: AdminIdentity, @Body() body: unknown) {
    const minutes = parseClearStuck(body, this.config.jobs.stuckTimeoutMinutes);
    const result = await this.jobs.clearStuck(minutes, ADMIN_CLEAR_MESSAGE);
    await this.audit.record(admin.username, 'jobs.clear_stuck', null, {
      older_than_minutes: minutes,
      cleared: result.cleared,
    });
    return { cleared: result.cleared, older_than_minutes: minutes, ids: result.ids };
  }
}
