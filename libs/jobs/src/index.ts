export { JobsModule } from './jobs.module';
export { JobsService } from './jobs.service';
export { JobMaintenance } from './job-maintenance.service';
export type { RetentionReport } from './job-maintenance.service';
export type { QueueDepth } from './generation-jobs.repository';
export type { JobStatus, JobType, JobView, AdminJobView } from './jobs.types';
export { WS_PATH, WS_CLOSE } from './jobs-websocket.server';
