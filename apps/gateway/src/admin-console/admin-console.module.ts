import { Module } from '@nestjs/common';
import { CircuitBreakerModule } from '@app/circuit-breaker';
import { ResponseCacheModule } from '@app/generation';
import { JobsModule } from '@app/jobs';
import { SessionsModule } from '@app/sessions';
import { AdminResilienceController } from './admin-resilience.controller';
import { AdminResilienceService } from './admin-resilience.service';
import { AdminStatsController } from './admin-stats.controller';
import { AdminStatsService } from './admin-stats.service';
import { AdminUiController } from './admin-ui.controller';
import { RequestTrafficRepository } from './request-traffic.repository';

/** The admin console's page (/admin/ui), the numbers it shows (/admin/stats) and /admin/resilience. */
@Module({
  imports: [CircuitBreakerModule, ResponseCacheModule, JobsModule, SessionsModule],
  controllers: [AdminStatsController, AdminResilienceController, AdminUiController],
  providers: [AdminStatsService, AdminResilienceService, RequestTrafficRepository],
})
export class AdminConsoleModule {}
