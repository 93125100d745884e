import { AuditService } from '@app/auth';
import { CircuitBreakerService } from '@app/circuit-breaker';
import { RedisService } from '@app/redis';
import { CliCommand, parseOptions } from '../cli-command';

const USAGE = 'breaker:reset <name> | breaker:reset --list';

/**
 * Closes a provider's circuit breaker on every replica (runbook "Circuit breaker: reset"). The
 * state lives in Redis; without Redis each gateway keeps its own and only its admin API can
 * reset it, which the command says instead of pretending.
 */
export const breakerResetCommand: CliCommand = {
  name: 'breaker:reset',
  usage: USAGE,
  description: 'Reset a circuit breaker to closed (shared through Redis); --list shows them',
  async run(ctx, args) {
    const { flags, positional } = parseOptions(args);
    const name = positional[0];
    if (!name && !flags.has('list')) {
      ctx.print(`usage: npm run cli -- ${USAGE}`);
      return 2;
    }
    const app = await ctx.app();
    const breakers = app.get(CircuitBreakerService);
    if (flags.has('list')) {
      for (const b of await breakers.list())
        ctx.print(
          `${b.name.padEnd(24)} ${b.state.padEnd(9)} failures=${b.failures}` +
            (b.nextAttemptAt ? ` next_attempt_at=${b.nextAttemptAt}` : ''),
        );
      return 0;
    }
    if (!breakers.has(name)) {
      ctx.print(`error: no circuit breaker named '${name}' (one per provider; try --list)`);
      return 1;
    }
    const redis = app.get(RedisService);
    if (redis.mode !== 'redis') {
      ctx.print(
        redis.mode === 'memory'
          ? 'error: REDIS_URL is not set, so each gateway keeps its own breaker state; reset it with POST /admin/circuit-breakers/:name/reset on each gateway'
          : 'error: Redis is unreachable; the shared breaker state cannot be reached from here',
      );
      return 1;
    }
    const before = await breakers.get(name);
    const after = await breakers.reset(name, 'cli');
    await app
      .get(AuditService)
      .record('cli', 'circuit_breaker.reset', name, { from: before.state });
    ctx.print(`circuit breaker ${name}: ${before.state} -> ${after.state}`);
    return 0;
  },
};
