import { SuccessSample } from './breaker-store';

/** Successes waiting to be recorded, per breaker, oldest first. */
export class SuccessBuffer {
  private readonly byName = new Map<string, SuccessSample[]>();
  private count = 0;

  /** Successes waiting, over all breakers. */
  get size(): number {
    return this.count;
  }

  add(name: string, sample: SuccessSample): number {
    const list = this.byName.get(name);
    if (list) list.push(sample);
    else this.byName.set(name, [sample]);
    return ++this.count;
  }

  /** Removes and returns one breaker's successes. */
  take(name: string): SuccessSample[] {
    const list = this.byName.get(name) ?? [];
    this.byName.delete(name);
    this.count -= list.length;
    return list;
  }

  /** Removes and returns every breaker's successes. */
  takeAll(): [name: string, successes: SuccessSample[]][] {
    const all = [...this.byName.entries()];
    this.byName.clear();
    this.count = 0;
    return all;
  }
}
