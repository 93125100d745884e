import type { ServerResponse } from 'node:http';
import { SseSink } from './chat-result';

/** Writes SSE frames to a Node response, waiting for 'drain' when the client reads slowly. */
export class ResponseSseSink implements SseSink {
  constructor(private readonly res: ServerResponse) {}

  write(frame: string): Promise<boolean> {
    const res = this.res;
    if (res.destroyed || res.writableEnded) return Promise.resolve(false);
    if (res.write(frame)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        res.off('drain', onDrain);
        res.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      res.once('drain', onDrain);
      res.once('close', onClose);
    });
  }

  end(): void {
    if (!this.res.writableEnded && !this.res.destroyed) this.res.end();
  }
}
