import { AuditService } from '@app/auth';
import { CircuitBreakerService } from '@app/circuit-breaker';
import { RedisService } from '@app/redis';
import { CliCommand, usageOf } from '../cli-command';

/**
 * Closes a provider's circuit breaker on every replica (runbook "Circuit breaker: reset"). The
 * state lives in Redis; without Redis each gateway keeps its own and only its admin API can
 * read or reset it, which the command says instead of pretending: this process's own breakers
 * are always closed, so listing them would report "closed" for a breaker that is open.
 */
export const breakerResetCommand: CliCommand = {
  name: 'breaker:reset',
  description: 'Reset a circuit breaker to closed (shared through Redis); --list shows them',
  argument: '<name>',
  options: [{ name: 'list', description: 'list every breaker and its state instead' }],
  async run(ctx, { flags, argument: name }) {
    const list = flags.has('list');
    if (!name === !list) {
      ctx.print(`error: give a breaker name or --list; usage: ${usageOf(breakerResetCommand)}`);
      return 2;
    }
    const app = await ctx.app();
    const breakers = app.get(CircuitBreakerService);
    if (name && !breakers.has(name)) {
      ctx.print(`error: no circuit breaker named '${name}' (one per provider; try --list)`);
      return 1;
    }
    const redis = app.get(RedisService);
    if (redis.mode !== 'redis') {
      const perGateway = name
        ? `reset it with POST /admin/circuit-breakers/${name}/reset`
        : 'read them with GET /admin/circuit-breakers';
      ctx.print(
        redis.mode === 'memory'
          ? `error: REDIS_URL is not set, so each gateway keeps its own breaker state; ${perGateway} on each gateway`
          : 'error: Redis is unreachable; the shared breaker state cannot be reached from here',
      );
      return 1;
    }
    if (!name) {
      for (const b of await breakers.list())
        ctx.print(
          `${b.name.padEnd(24)} ${b.state.padEnd(9)} failures=${b.failures}` +
            (b.nextAttemptAt ? ` next_attempt_at=${b.nextAttemptAt}` : ''),
        );
      return 0;
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
