import { AuditService } from '@app/auth';
import { JobsService } from '@app/jobs';
import { CliCommand } from '../cli-command';

/**
 * Seed 004 "Clear Stuck Jobs" without the API: pending or generating jobs created more than N
 * minutes ago (default JOB_STUCK_TIMEOUT_MINUTES) become failed and their credits are refunded.
 * Prints `{"cleared": n, "ids": [...]}`.
 */
export const jobsClearStuckCommand: CliCommand = {
  name: 'jobs:clear-stuck',
  description: 'Fail and refund jobs stuck in pending/generating (seed 004)',
  options: [
    {
      name: 'older-than-minutes',
      value: '<n>',
      description: 'age of a stuck job (default JOB_STUCK_TIMEOUT_MINUTES)',
    },
  ],
  async run(ctx, { values }) {
    const raw = values.get('older-than-minutes');
    const minutes = raw === undefined ? ctx.config.jobs.stuckTimeoutMinutes : Number(raw);
    if (!Number.isSafeInteger(minutes) || minutes < 1) {
      ctx.print('error: --older-than-minutes must be a whole number, at least 1');
      return 2;
    }
    const app = await ctx.app();
    const result = await app.get(JobsService).clearStuck(minutes, 'stuck job cleared by admin');
    await app.get(AuditService).record('cli', 'jobs.clear_stuck', null, {
      older_than_minutes: minutes,
      cleared: result.cleared,
    });
    ctx.print(
      JSON.stringify({ cleared: result.cleared, older_than_minutes: minutes, ids: result.ids }),
    );
    return 0;
  },
};
