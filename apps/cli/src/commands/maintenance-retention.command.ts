import { JobMaintenance } from '@app/jobs';
import { CliCommand } from '../cli-command';

/**
 * Runs the daily retention now (the same code the pg-boss schedule runs): request_logs day
 * partitions past REQUEST_LOG_RETENTION_DAYS, audit_log rows past AUDIT_LOG_RETENTION_DAYS,
 * finished generation jobs past JOB_RETENTION_DAYS. Prints what it removed as JSON.
 */
export const maintenanceRetentionCommand: CliCommand = {
  name: 'maintenance:retention',
  description: 'Drop request logs, audit rows and finished jobs past their retention now',
  options: [],
  async run(ctx) {
    const app = await ctx.app();
    const report = await app.get(JobMaintenance).runRetention();
    ctx.print(JSON.stringify(report));
    return 0;
  },
};
