import { ChatCompletion } from '../upstream/upstream.types';

/** Where a stream is written (the HTTP response, in the controller). */
export interface SseSink {
  /** Writes one frame; waits while the client is slow (backpressure). False once it is gone. */
  write(frame: string): Promise<boolean>;
  end(): void;
}

export type ChatResult =
  | { type: 'json'; body: ChatCompletion; provider: string }
  | {
      type: 'stream';
      provider: string;
      /** Relays the stream into `sink` and ends it; resolves when the request is over. */
      pipe(sink: SseSink): Promise<void>;
      /** For a client that left before `pipe` started: releases everything. */
      cancel(): Promise<void>;
    };
