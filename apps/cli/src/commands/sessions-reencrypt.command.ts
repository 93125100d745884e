import { SessionsService } from '@app/sessions';
import { CliCommand } from '../cli-command';

/**
 * Key rotation: with the new key in SESSION_ENCRYPTION_KEY and the old one in
 * SESSION_ENCRYPTION_KEY_PREVIOUS, rewrites every stored credential under the new key.
 * Safe to run while gateways serve traffic (each row is swapped only if unchanged) and to rerun.
 */
export const sessionsReencryptCommand: CliCommand = {
  name: 'sessions:reencrypt',
  description: 'Re-encrypt every session credential under SESSION_ENCRYPTION_KEY',
  options: [],
  async run(ctx) {
    if (!ctx.config.sessions.encryptionKey) {
      ctx.print(
        'error: set SESSION_ENCRYPTION_KEY (the new key) and SESSION_ENCRYPTION_KEY_PREVIOUS (the old one)',
      );
      return 2;
    }
    const app = await ctx.app();
    const result = await app.get(SessionsService).reencryptAll('cli');
    ctx.print(
      `Sessions: ${result.total}; re-encrypted: ${result.reencrypted}; already under the current key: ${result.alreadyCurrent}; plain-text rows encrypted: ${result.plaintext}; failed: ${result.failed.length}`,
    );
    if (result.failed.length > 0) {
      for (const id of result.failed) ctx.print(`  cannot decrypt session ${id}`);
      ctx.print(
        'These rows open with neither SESSION_ENCRYPTION_KEY nor SESSION_ENCRYPTION_KEY_PREVIOUS; they were left unchanged.',
      );
      return 1;
    }
    return 0;
  },
};
