import { CliCommand } from '../cli-command';
import { breakerResetCommand } from './breaker-reset.command';
import { createAdminCommand } from './create-admin.command';
import { creditsGrantCommand } from './credits-grant.command';
import { jobsClearStuckCommand } from './jobs-clear-stuck.command';
import { keysCreateCommand } from './keys-create.command';
import { migrateCommand } from './migrate.command';
import { migrateRevertCommand } from './migrate-revert.command';
import { maintenanceRetentionCommand } from './maintenance-retention.command';
import { sessionsAddCommand } from './sessions-add.command';
import { sessionsReencryptCommand } from './sessions-reencrypt.command';

/** Every operator command; modules add theirs here. */
export const COMMANDS: CliCommand[] = [
  migrateCommand,
  migrateRevertCommand,
  createAdminCommand,
  keysCreateCommand,
  creditsGrantCommand,
  sessionsAddCommand,
  sessionsReencryptCommand,
  jobsClearStuckCommand,
  maintenanceRetentionCommand,
  breakerResetCommand,
];
