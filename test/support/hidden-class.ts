import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--allow-natives-syntax');
// Compiled after the flag is set; %HaveSameMap is V8's own answer to "same hidden class?".
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (
  a: object,
  b: object,
) => boolean;

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
  return haveSameMap(previous, last);
}

/** Whether V8 gave both objects the same hidden class. */
export function sameHiddenClass(a: object, b: object): boolean {
  return haveSameMap(a, b);
}
