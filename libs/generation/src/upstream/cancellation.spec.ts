import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { Cancellation } from './cancellation';

describe('Cancellation', () => {
  it('runs each listener once, in order, after the reason is set; a second abort changes nothing', () => {
    const cancellation = new Cancellation();
    const seen: string[] = [];
    cancellation.addEventListener('abort', () => seen.push(`first ${String(cancellation.reason)}`));
    cancellation.addEventListener('abort', () => seen.push('second'));

    cancellation.abort('client left');
    cancellation.abort('timeout');

    expect(seen).toEqual(['first client left', 'second']);
    expect(cancellation.aborted).toBe(true);
    expect(cancellation.reason).toBe('client left');
  });

  it('forgets removed listeners, adds a listener once, and calls none added after the abort', () => {
    const cancellation = new Cancellation();
    const removed = jest.fn();
    const twice = jest.fn();
    cancellation.addEventListener('abort', removed);
    cancellation.removeEventListener('abort', removed);
    cancellation.addEventListener('abort', twice);
    cancellation.addEventListener('abort', twice);
    cancellation.abort();
    const late = jest.fn();
    cancellation.addEventListener('abort', late);

    expect(removed).not.toHaveBeenCalled();
    expect(twice).toHaveBeenCalledTimes(1);
    expect(late).not.toHaveBeenCalled();
    expect(cancellation.reason).toBeInstanceOf(DOMException);
    expect((cancellation.reason as DOMException).name).toBe('AbortError');
  });

  it('keeps calling listeners after one throws, then throws the first error', () => {
    const cancellation = new Cancellation();
    const after = jest.fn();
    cancellation.addEventListener('abort', () => {
      throw new Error('listener failed');
    });
    cancellation.addEventListener('abort', after);

    expect(() => cancellation.abort()).toThrow('listener failed');
    expect(after).toHaveBeenCalledTimes(1);
    expect(cancellation.aborted).toBe(true);
  });

  describe('as the signal of an undici request', () => {
    let server: Server;
    let pool: Pool;
    let requestsSeen = 0;

    beforeAll(async () => {
      // Answers headers at once and the body never, so only the signal can end the request.
      server = createServer((_req, res) => {
        requestsSeen++;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });

    afterAll(async () => {
      await pool.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('ends a request in flight with the cancellation’s reason', async () => {
      const cancellation = new Cancellation();
      const res = await pool.request({
        path: '/',
        method: 'GET',
        signal: cancellation.signal as AbortSignal,
      });
      const reading = res.body.text();
      const reason = new Error('answer no longer wanted');
      cancellation.abort(reason);
      await expect(reading).rejects.toBe(reason);
    });

    it('does not send a request whose cancellation was already aborted', async () => {
      const before = requestsSeen;
      const cancellation = new Cancellation();
      const reason = new Error('client left');
      cancellation.abort(reason);
      await expect(
        pool.request({ path: '/', method: 'GET', signal: cancellation.signal as AbortSignal }),
      ).rejects.toBe(reason);
      expect(requestsSeen).toBe(before);
    });
  });
});
