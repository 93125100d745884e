import { MIN_PASSWORD_LENGTH, UsersService } from '@app/auth';
import { CliCommand } from '../cli-command';

export const createAdminCommand: CliCommand = {
  name: 'create-admin',
  description: 'Create user "admin", or reset its password, from ADMIN_PASSWORD',
  options: [],
  async run(ctx) {
    const password = ctx.config.auth.adminPassword ?? '';
    if (password.trim().length === 0) {
      ctx.print('ADMIN_PASSWORD is not set: export ADMIN_PASSWORD=<password> and run again.');
      return 2;
    }
    if (password.length < MIN_PASSWORD_LENGTH) {
      ctx.print(`ADMIN_PASSWORD is too short: use at least ${MIN_PASSWORD_LENGTH} characters.`);
      return 2;
    }
    const app = await ctx.app();
    const { created } = await app.get(UsersService).setAdminPassword('admin', password, 'cli');
    ctx.print(
      created
        ? 'Created admin user "admin". Get a token with POST /auth/token.'
        : 'Reset the password of admin user "admin". Existing tokens stay valid until they expire.',
    );
    return 0;
  },
};
