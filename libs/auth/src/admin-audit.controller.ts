import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { AdminGuard } from './admin.guard';
import { AuditService } from './audit.service';
import { decodeCursor, parseLimit } from './pagination';

@Controller('admin/audit')
@UseGuards(AdminGuard)
export class AdminAuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  list(
    @Query('limit') limit?: string,
    @Query('cursor') cursor?: string,
    @Query('actor') actor?: string,
    @Query('action') action?: string,
  ) {
    return this.audit.list(
      { actor: actor || undefined, action: action || undefined },
      parseLimit(limit),
      decodeCursor(cursor),
    );
  }
}
