import { Module } from '@nestjs/common';
import { GenerationModule } from '@app/generation';
import { AdminJobsController } from './admin-jobs.controller';
import { GenerationJobsRepository } from './generation-jobs.repository';
import { JobEvents } from './job-events.service';
import { JobExecutor } from './job-executor';
import { GenerationJobExecutor } from './generation-job.executor';
import { JobLifecycle } from './job-lifecycle.service';
import { JobMaintenance } from './job-maintenance.service';
import { JobQueue } from './job-queue.service';
import { JobRunner } from './job-runner.service';
import { JobWorker } from './job-worker.service';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';
import { JobsWebSocketServer } from './jobs-websocket.server';

/**
 * Async generation jobs: the public and admin endpoints, the pg-boss queue and its workers,
 * WebSocket updates at /v1/ws, the stuck-job reaper and the daily retention.
 */
@Module({
  imports: [GenerationModule],
  controllers: [JobsController, AdminJobsController],
  providers: [
    GenerationJobsRepository,
    JobEvents,
    { provide: JobExecutor, useClass: GenerationJobExecutor },
    JobLifecycle,
    JobQueue,
    JobRunner,
    JobWorker,
    JobsService,
    JobMaintenance,
    JobsWebSocketServer,
  ],
  exports: [JobsService, JobMaintenance],
})
export class JobsModule {}
