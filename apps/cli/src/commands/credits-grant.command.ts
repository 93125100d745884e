import { AuditService, isUuid, UsersService } from '@app/auth';
import { CreditsService } from '@app/credits';
import { CliCommand } from '../cli-command';

/**
 * Grants credits (seed 004 "Grant Emergency Credits") through the ledger, never by editing the
 * balance: one `grant` row and its balance update in one statement. With --idempotency-key a
 * repeated command grants once. Prints the ledger row as JSON.
 */
export const creditsGrantCommand: CliCommand = {
  name: 'credits:grant',
  description: 'Grant credits to a user (idempotent with --idempotency-key)',
  options: [
    { name: 'user', value: '<id|username>', required: true, description: 'who gets them' },
    { name: 'amount', value: '<n>', required: true, description: 'credits, a whole number' },
    { name: 'description', value: '<text>', description: 'kept on the ledger row' },
    {
      name: 'idempotency-key',
      value: '<key>',
      description: 'the same key grants once, however often the command runs',
    },
  ],
  async run(ctx, { values }) {
    const user = values.get('user')!;
    const amount = Number(values.get('amount'));
    if (!Number.isSafeInteger(amount) || amount < 1) {
      ctx.print('error: --amount must be a whole number of credits, at least 1');
      return 2;
    }
    const app = await ctx.app();
    const users = app.get(UsersService);
    const userId = isUuid(user) ? user.toLowerCase() : (await users.findByUsername(user))?.id;
    if (!userId) {
      ctx.print(`error: no user ${user}`);
      return 1;
    }
    const write = await app
      .get(CreditsService)
      .grant(
        userId,
        amount,
        values.get('description') ?? 'Granted from the CLI',
        values.get('idempotency-key'),
      );
    if (!write.replayed)
      await app.get(AuditService).record('cli', 'credits.grant', userId, {
        amount,
        ledger_id: write.entry.id,
        idempotency_key: values.get('idempotency-key') ?? null,
      });
    ctx.print(
      JSON.stringify({
        id: write.entry.id,
        user_id: write.entry.userId,
        event_type: write.entry.eventType,
        amount: write.entry.amount,
        balance_after: write.entry.balanceAfter,
        replayed: write.replayed,
      }),
    );
    return 0;
  },
};
