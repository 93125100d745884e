import { BreakerState } from './breaker.types';

/**
 * What this process last heard from Redis about each breaker, kept to answer one question without
 * a round trip: "was it closed a moment ago?". Everything else (open, half-open probes, a breaker
 * not seen lately) asks Redis.
 *
 * Transitions made elsewhere arrive as `forget` (pub/sub); if a message is lost, the view expires
 * after `freshMs` anyway. A reply that was in flight when a `forget` arrived may describe the state
 * before the change, so `saw` ignores replies to calls started before the latest `forget`.
 */
export class ClosedStateView {
  /** When Redis was last seen saying "closed" (the time the call was sent). */
  private readonly closedAt = new Map<string, number>();
  /** Counts forgets; each breaker remembers the count at its last one. */
  private clock = 0;
  private readonly forgottenAt = new Map<string, number>();
  private allForgottenAt = 0;

  constructor(private readonly freshMs: number) {}

  /** Take before a call to Redis; pass to `saw` with its reply. */
  get generation(): number {
    return this.clock;
  }

  isClosed(name: string, now: number): boolean {
    const at = this.closedAt.get(name);
    return at !== undefined && now - at < this.freshMs;
  }

  /** Records a Redis reply to a call sent at `sentAt` under `generation`. */
  saw(name: string, state: BreakerState, sentAt: number, generation: number): void {
    const forgotten = Math.max(this.allForgottenAt, this.forgottenAt.get(name) ?? 0);
    if (forgotten > generation) return;
    if (state !== 'closed') this.closedAt.delete(name);
    else if ((this.closedAt.get(name) ?? -Infinity) < sentAt) this.closedAt.set(name, sentAt);
  }

  forget(name: string): void {
    this.forgottenAt.set(name, ++this.clock);
    this.closedAt.delete(name);
  }

  forgetAll(): void {
    this.allForgottenAt = ++this.clock;
    this.closedAt.clear();
  }
}
