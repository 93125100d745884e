import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { AdminGuard } from '@app/auth';
import { ApiError } from '@app/observability';
import { AdminStats, AdminStatsService } from './admin-stats.service';

const DEFAULT_WINDOW_SECONDS = 300;
const MAX_WINDOW_SECONDS = 86_400;

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

export function parseWindow(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_WINDOW_SECONDS;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 60 || n > MAX_WINDOW_SECONDS)
    throw ApiError.badRequest(
      `window_seconds must be a whole number of seconds from 60 to ${MAX_WINDOW_SECONDS}`,
      'window_seconds',
    );
  return n;
}
