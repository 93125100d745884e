import {
  Body,
  Controller,
  Get,
  HttpCode,
  Param,
  Post,
  Query,
  Res,
  UseGuards,
} from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiError } from '@app/observability';
import { AdminGuard, AuditService, CurrentAdmin, requireUuid, UsersService } from '@app/auth';
import type { AdminIdentity } from '@app/auth';
import {
  adjustCreditsDto,
  cycleResetDto,
  decodeCursor,
  grantCreditsDto,
  parseDto,
  parseLimit,
  recalculateDto,
  refundRequestDto,
} from './credits.dto';
import { CreditsService } from './credits.service';
import { accountView, entryView, ledgerPageView, writeView } from './credits.views';

/** Seed 004's credit procedures as admin endpoints (JWT with role admin). */
@Controller('admin/credits')
@UseGuards(AdminGuard)
export class CreditsAdminController {
  constructor(
    private readonly credits: CreditsService,
    private readonly auditLog: AuditService,
    private readonly users: UsersService,
  ) {}

  /** 201 for a new grant; 200 with `replayed: true` when the idempotency key was used before. */
  @Post('grant')
  async grant(
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminIdentity,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const input = parseDto(grantCreditsDto, body);
    const write = await this.credits.grant(
      requireUuid(input.user_id, 'user_id'),
      input.amount,
      input.description ?? `Granted by ${admin.username}`,
      input.idempotency_key,
    );
    if (write.replayed) reply.status(200);
    else
      await this.auditLog.record(admin.username, 'credits.grant', write.entry.userId, {
        amount: input.amount,
        ledger_id: write.entry.id,
        idempotency_key: input.idempotency_key ?? null,
      });
    return writeView(write);
  }

  @Post('adjust')
  async adjust(
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminIdentity,
    @Res({ passthrough: true }) reply: FastifyReply,
  ) {
    const input = parseDto(adjustCreditsDto, body);
    const write = await this.credits.adminAdjust(
      requireUuid(input.user_id, 'user_id'),
      input.amount,
      input.description,
      input.idempotency_key,
    );
    if (write.replayed) reply.status(200);
    else
      await this.auditLog.record(admin.username, 'credits.adjust', write.entry.userId, {
        amount: input.amount,
        ledger_id: write.entry.id,
      });
    return writeView(write);
  }

  @Post('recalculate')
  @HttpCode(200)
  async recalculate(@Body() body: unknown, @CurrentAdmin() admin: AdminIdentity) {
    const input = parseDto(recalculateDto, body);
    const userId = await this.existingUserOrAll(input.user_id);
    const result = await this.credits.recalculate(userId);
    const view = {
      changed: result.changed.map((c) => ({
        user_id: c.userId,
        old_balance: c.oldBalance,
        new_balance: c.newBalance,
      })),
      unfixable: result.unfixable.map((u) => ({ user_id: u.userId, ledger_sum: u.ledgerSum })),
    };
    await this.auditLog.record(admin.username, 'credits.recalculate', userId ?? null, view);
    return view;
  }

  @Get('audit')
  audit() {
    return this.credits.audit();
  }

  /** Refunds the open reservation of a request by its x-request-id. */
  @Post('refund')
  @HttpCode(200)
  async refund(@Body() body: unknown, @CurrentAdmin() admin: AdminIdentity) {
    const input = parseDto(refundRequestDto, body);
    const refunds = await this.credits.refundRequest(
      input.request_id,
      input.reason ?? `refunded by ${admin.username}`,
    );
    await this.auditLog.record(admin.username, 'credits.refund', input.request_id, { refunds });
    return { refunds };
  }

  /** Runs the billing-cycle reset now for accounts whose cycle has ended (what the scheduler does). */
  @Post('cycle-reset')
  @HttpCode(200)
  async cycleReset(@Body() body: unknown, @CurrentAdmin() admin: AdminIdentity) {
    const input = parseDto(cycleResetDto, body);
    const userId = await this.existingUserOrAll(input.user_id);
    const entries = await this.credits.cycleReset(userId);
    if (entries.length > 0)
      await this.auditLog.record(admin.username, 'credits.cycle_reset', userId ?? null, {
        users: entries.length,
      });
    return { reset: entries.map(entryView) };
  }

  @Get('users/:userId')
  async account(@Param('userId') userId: string) {
    const id = await this.existingUser(userId);
    return { user_id: id, ...accountView(await this.credits.balance(id)) };
  }

  @Get('users/:userId/ledger')
  async ledger(
    @Param('userId') userId: string,
    @Query('limit') limit?: string,
    @Query('cursor') cursor?: string,
  ) {
    const size = parseLimit(limit);
    const id = await this.existingUser(userId);
    const rows = await this.credits.ledger(id, size + 1, decodeCursor(cursor));
    return ledgerPageView(rows, size);
  }

  /** A well-formed id of no user is a 404, not an empty account. */
  private async existingUser(userId: string): Promise<string> {
    const id = requireUuid(userId, 'user_id');
    if (!(await this.users.findById(id)))
      throw ApiError.notFound(`No user with id ${id}`, 'user_not_found', 'user_id');
    return id;
  }

  /**
   * For the routes that act on every user when `user_id` is absent: a given id must name a user,
   * or an unknown one would answer an empty 200 (and be audited) as if there were nothing to do.
   */
  private async existingUserOrAll(userId: string | undefined): Promise<string | undefined> {
    return userId === undefined ? undefined : this.existingUser(userId);
  }
}
