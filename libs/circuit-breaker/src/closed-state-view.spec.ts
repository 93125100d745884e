import { ClosedStateView } from './closed-state-view';

describe('ClosedStateView', () => {
  it('trusts a closed reply for freshMs after the call was sent, then asks again', () => {
    const view = new ClosedStateView(500);
    expect(view.isClosed('p', 1000)).toBe(false);
    view.saw('p', 'closed', 1000, view.generation);
    expect(view.isClosed('p', 1499)).toBe(true);
    expect(view.isClosed('p', 1500)).toBe(false);
    expect(view.isClosed('other', 1000)).toBe(false);
  });

  it('keeps no view of a breaker that is not closed', () => {
    const view = new ClosedStateView(500);
    view.saw('p', 'closed', 1000, view.generation);
    view.saw('p', 'open', 1001, view.generation);
    expect(view.isClosed('p', 1002)).toBe(false);
    view.saw('p', 'closed', 1003, view.generation);
    view.saw('p', 'half_open', 1004, view.generation);
    expect(view.isClosed('p', 1005)).toBe(false);
  });

  it('ignores a reply to a call started before a change was announced', () => {
    const view = new ClosedStateView(500);
    const before = view.generation;
    view.forget('p'); // another replica opened it while our call was in flight
    view.saw('p', 'closed', 1000, before);
    expect(view.isClosed('p', 1001)).toBe(false);
    view.saw('p', 'closed', 1002, view.generation);
    expect(view.isClosed('p', 1003)).toBe(true);
    view.forgetAll();
    expect(view.isClosed('p', 1004)).toBe(false);
  });

  it('a change to one breaker does not discard replies about another', () => {
    const view = new ClosedStateView(500);
    const before = view.generation;
    view.forget('other');
    view.saw('p', 'closed', 1000, before);
    expect(view.isClosed('p', 1001)).toBe(true);
  });

  it('does not let an older reply shorten the view a newer one gave', () => {
    const view = new ClosedStateView(500);
    view.saw('p', 'closed', 2000, view.generation);
    view.saw('p', 'closed', 1000, view.generation);
    expect(view.isClosed('p', 2400)).toBe(true);
  });
});
