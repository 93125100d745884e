import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { AdminGuard } from '@app/auth';
import { parseWindow } from './admin-stats.params';
import { AdminStats, AdminStatsService } from './admin-stats.service';

/** DESIGN §5: traffic, error rate, cache hit rate, sessions, breakers, queue depth, credits spent. */
@Controller('admin/stats')
@UseGuards(AdminGuard)
export class AdminStatsController {
  constructor(private readonly stats: AdminStatsService) {}

  @Get()
  get(@Query('window_seconds') window?: string): Promise<AdminStats> {
    return this.stats.snapshot(parseWindow(window));
  }
}
