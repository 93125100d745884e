import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--allow-natives-syntax');
// Compiled after the flag is set; %HaveSameMap is V8's own answer to "same hidden class?".
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (
  a: object,
  b: object,
) => boolean;
/**
 * An object built before V8 widened one of its fields (a number first stored as a small integer,
 * then as a fraction: a latency of exactly 2 ms, then 0.37 ms) keeps a deprecated hidden class
 * until something reads it, when V8 moves it to the new one. That happens once per field, not
 * per object, so it is not what these checks look for: move both objects before comparing.
 */
const migrate = new Function('o', '%TryMigrateInstance(o)') as (o: object) => void;

function haveSameCurrentMap(a: object, b: object): boolean {
  migrate(a);
  migrate(b);
  return haveSameMap(a, b);
}

/**
 * Calls `make` often enough for V8 to optimise the code that builds the object (`{ ...x, y }`
 * keeps one hidden class only until then), and says whether the last two objects still share
 * theirs. Objects built per request should: a hidden class made per request is
 * old-generation garbage that keeps the request's objects alive through young-generation GCs
 * (docs/performance.md, item 16).
 */
export function keepsOneHiddenClass(make: (i: number) => object, calls = 1_000): boolean {
  let previous = make(0);
  let last = previous;
  for (let i = 1; i < calls; i++) {
    previous = last;
    last = make(i);
  }
  return haveSameCurrentMap(previous, last);
}

/** Whether V8 gave both objects the same hidden class (after moving either off a deprecated one). */
export function sameHiddenClass(a: object, b: object): boolean {
  return haveSameCurrentMap(a, b);
}
