import { AsyncResource } from 'node:async_hooks';

/**
 * Replaces `AsyncResource.prototype.bind` with one that gives the bound function no
 * `asyncResource` accessor, when this Node still adds it (DEP0172, Node 20).
 *
 * Why: Fastify binds a fresh AsyncResource around every request body it parses. Node 20's bind
 * defines that deprecated accessor with two new closures, and functions bound that way keep the
 * resource and the request they reach alive through young-generation GCs until the next full GC
 * (most likely because each gets a hidden class of its own, and those live in the old
 * generation): a plain node:http server doing one such bind per request kept 2.8 MB per scavenge
 * and paused 6–9 ms, against 0.7 KB and 0.2 ms without it. Behaviour is otherwise Node's own:
 * the function runs in the resource's async scope with the caller's `this` (or `thisArg`), and
 * keeps `fn.length`.
 */
export function installLeanAsyncResourceBind(): void {
  // Once installed (or on a Node without the accessor) the probe has none: nothing to do.
  const probe = new AsyncResource('switchyard-probe').bind(() => undefined);
  if (!('asyncResource' in probe)) return;

  function leanBind(
    this: AsyncResource,
    fn: (...args: unknown[]) => unknown,
    thisArg?: unknown,
  ): (...args: unknown[]) => unknown {
    if (typeof fn !== 'function')
      throw new TypeError(`The "fn" argument must be of type function. Received ${typeof fn}`);
    const bound =
      thisArg === undefined ? leanBound(this, fn) : this.runInAsyncScope.bind(this, fn, thisArg);
    Object.defineProperty(bound, 'length', { value: fn.length, configurable: true });
    return bound;
  }
  AsyncResource.prototype.bind = leanBind as AsyncResource['bind'];
}

/** The caller's `this` goes through, as with Node's own bind. */
function leanBound(
  resource: AsyncResource,
  fn: (...args: unknown[]) => unknown,
): (...args: unknown[]) => unknown {
  return function (this: unknown, ...args: unknown[]) {
    return resource.runInAsyncScope(fn, this, ...args);
  };
}
