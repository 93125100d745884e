/**
 * pg-boss 10's worker loop calls `complete()` / `fail()` without awaiting them
 * (src/manager.js, onFetch). When Postgres is unreachable at that moment (a restart) the
 * rejected promise is unhandled, and Node's default for unhandled rejections ends the process:
 * one database restart while a job finishes would crash every gateway and worker running jobs.
 *
 * Wrapping the two methods so their promise always has a handler keeps the process up; callers
 * that do await them still get the rejection. A completion lost this way only leaves the queue
 * entry active: it expires after JOB_VISIBILITY_TIMEOUT_SECONDS and the next claim finds the
 * generation_jobs row already final, so nothing runs or is charged twice. Remove when pg-boss
 * awaits these calls itself.
 */
type Method = (this: unknown, ...args: unknown[]) => Promise<unknown>;

let installed = false;
let report: (err: unknown, method: string) => void = () => undefined;

export function guardPgBossCompletions(onLost: (err: unknown, method: string) => void): void {
  report = onLost;
  if (installed) return;
  installed = true;
  // No type declarations for the internal module; it is pinned with pg-boss 10.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Manager = require('pg-boss/src/manager') as { prototype: Record<string, Method> };
  for (const name of ['complete', 'fail']) {
    const original = Manager.prototype[name];
    if (typeof original !== 'function') continue;
    Manager.prototype[name] = function (this: unknown, ...args: unknown[]) {
      const pending = original.apply(this, args);
      pending.catch((err) => report(err, name));
      return pending;
    };
  }
}
