/**
 * The part of AbortSignal the generation path uses. A real AbortSignal fits it (job runs pass
 * their controller's), and so does a Cancellation; undici takes either, since it only needs
 * `aborted`, `reason` and the two listener methods.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A request's or an upstream attempt's cancellation: AbortController and its signal in one
 * plain object. Why not AbortController: on Node 20 every AbortSignal made on the request path
 * kept the request's objects alive through young-generation collections until the next full GC
 * (a NestJS app making two per request kept 0.85 MB per scavenge instead of 0.05 MB, and paused
 * 2.7 ms instead of 0.7); the gateway made three per request.
 *
 * Semantics follow AbortSignal where the gateway depends on them: `abort` takes effect once,
 * with the first reason; each listener runs once, in the order added; adding a listener twice
 * adds it once; one added after the abort is not called. A listener that throws does not stop
 * the others; `abort` throws the first such error once all have run.
 */
export class Cancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Array<() => void> | undefined;

  get signal(): CancelSignal {
    return this;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    this.listeners ??= [];
    if (!this.listeners.includes(listener)) this.listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.listeners?.indexOf(listener) ?? -1;
    if (at !== -1) this.listeners!.splice(at, 1);
  }

  abort(reason: unknown = new DOMException('This operation was aborted', 'AbortError')): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners ?? [];
    this.listeners = undefined;
    let failure: { error: unknown } | undefined;
    for (const listener of listeners) {
      try {
        listener();
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }
}
