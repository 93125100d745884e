import { AsyncLocalStorage, AsyncResource, executionAsyncId } from 'node:async_hooks';
import { installLeanAsyncResourceBind } from './lean-async-bind';

describe('installLeanAsyncResourceBind', () => {
  beforeAll(() => installLeanAsyncResourceBind());

  it('runs the bound function in the resource’s async scope with the caller’s this and arguments', () => {
    const storage = new AsyncLocalStorage<string>();
    const resource = storage.run('where the resource was made', () => new AsyncResource('test'));
    const bound = resource.bind(function (this: unknown, a: number, b: number) {
      return { store: storage.getStore(), asyncId: executionAsyncId(), self: this, sum: a + b };
    });
    const caller = { name: 'caller' };

    const seen = storage.run('where it is called', () => bound.call(caller, 2, 3));

    expect(seen).toEqual({
      store: 'where the resource was made',
      asyncId: resource.asyncId(),
      self: caller,
      sum: 5,
    });
    expect(bound.length).toBe(2);
  });

  it('uses thisArg when one is given, and passes errors through', () => {
    const resource = new AsyncResource('test');
    const owner = { name: 'owner' };
    // Node takes a thisArg (documented since v16); @types/node does not declare it.
    const bindWith = resource.bind as (fn: () => unknown, thisArg: unknown) => () => unknown;
    const bound = bindWith.call(
      resource,
      function (this: unknown) {
        return this;
      },
      owner,
    );
    expect(bound.call({ name: 'someone else' })).toBe(owner);

    const failing = resource.bind(() => {
      throw new Error('boom');
    });
    expect(() => failing()).toThrow('boom');
  });

  it('gives bound functions no accessor of their own (the deprecated asyncResource one)', () => {
    const resource = new AsyncResource('test');
    const bound = resource.bind((x: number) => x);
    expect('asyncResource' in bound).toBe(false);
    const accessors = Object.values(Object.getOwnPropertyDescriptors(bound)).filter(
      (d) => d.get !== undefined || d.set !== undefined,
    );
    expect(accessors).toEqual([]);
    // The static helper goes through the same method.
    expect('asyncResource' in AsyncResource.bind(() => 1)).toBe(false);
  });

  it('refuses a non-function like Node does, and installing twice changes nothing', () => {
    const installed = AsyncResource.prototype.bind;
    installLeanAsyncResourceBind();
    expect(AsyncResource.prototype.bind).toBe(installed);
    // Another test file may have installed it from its own realm: match by name, not class.
    expect(() => new AsyncResource('test').bind(42 as unknown as () => void)).toThrow(
      expect.objectContaining({ name: 'TypeError', message: expect.stringMatching(/function/) }),
    );
  });
});
