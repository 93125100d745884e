import { Body, Controller, Get, HttpCode, Inject, Param, Post, UseGuards } from '@nestjs/common';
import { z } from 'zod';
import { AdminGuard, AdminIdentity, AuditService, CurrentAdmin } from '@app/auth';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ApiError, inputIssueMessage } from '@app/observability';
import { CircuitBreakerService } from './circuit-breaker.service';

const MAX_FORCE_OPEN_MS = 24 * 3600_000;

const forceOpenBody = z
  .object({ durationMs: z.number().int().min(1).max(MAX_FORCE_OPEN_MS).optional() })
  .strict();

/** Seeds 003 and 004: look at the breakers, reset one, force one open to rehearse a fallback. */
@Controller('admin/circuit-breakers')
@UseGuards(AdminGuard)
export class CircuitBreakerController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly breakers: CircuitBreakerService,
    private readonly audit: AuditService,
  ) {}

  @Get()
  async list() {
    return { data: await this.breakers.list() };
  }

  @Get(':name')
  get(@Param('name') name: string) {
    return this.breakers.get(name);
  }

  @Post(':name/reset')
  @HttpCode(200)
  async reset(@Param('name') name: string, @CurrentAdmin() admin: AdminIdentity) {
    const view = await this.breakers.reset(name, admin.username);
    await this.audit.record(admin.username, 'circuit_breaker.reset', name);
    return view;
  }

  @Post(':name/force-open')
  @HttpCode(200)
  async forceOpen(
    @Param('name') name: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminIdentity,
  ) {
    if (this.config.production && !this.config.breaker.allowForceOpen)
      throw ApiError.forbidden(
        'force-open is disabled in production; set ALLOW_FORCE_OPEN=true to allow it',
        'force_open_disabled',
      );
    const input = body ?? {};
    const parsed = forceOpenBody.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue.path.join('.');
      // A body-level issue (not an object, an unknown field) keeps the fixed message below.
      throw ApiError.badRequest(
        inputIssueMessage(issue, input, path || null) ??
          `durationMs: expected an integer number of milliseconds between 1 and ${MAX_FORCE_OPEN_MS}`,
        path || 'durationMs',
      );
    }
    const durationMs = parsed.data.durationMs ?? this.config.breaker.openMs;
    const view = await this.breakers.forceOpen(name, durationMs, admin.username);
    await this.audit.record(admin.username, 'circuit_breaker.force_open', name, { durationMs });
    return view;
  }
}
