import { Module } from '@nestjs/common';
import { CircuitBreakerModule } from '@app/circuit-breaker';
import { ResponseCacheModule } from '@app/generation';
import { JobsModule } from '@app/jobs';
import { SessionsModule } from '@app/sessions';
import { AdminStatsController } from './admin-stats.controller';
import { AdminStatsService } from './admin-stats.service';
import { AdminUiController } from './admin-ui.controller';
import { RequestTrafficRepository } from './request-traffic.repository';

/** The admin console's page (/admin/ui) and the overview numbers it shows (/admin/stats). */
@Module({
  imports: [CircuitBreakerModule, ResponseCacheModule, JobsModule, SessionsModule],
  controllers: [AdminStatsController, AdminUiController],
  providers: [AdminStatsService, RequestTrafficRepository],
})
export class AdminConsoleModule {}
