import { createServer, Server, Socket } from 'node:net';

/**
 * A TCP relay the test can cut and restore, to make a dependency (Postgres) unreachable
 * without stopping the shared server.
 */
export class TcpProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly pairs = new Set<[Socket, Socket]>();
  private frozen = false;
  private repliesLost = false;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(port = 0): Promise<void> {
    this.server = createServer((client) => {
      const upstream = new Socket();
      this.sockets.add(client).add(upstream);
      const pair: [Socket, Socket] = [client, upstream];
      const cleanup = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
        this.pairs.delete(pair);
      };
      client.on('error', cleanup).on('close', cleanup);
      upstream.on('error', cleanup).on('close', cleanup);
      upstream.connect(this.targetPort, this.targetHost, () => {
        this.pairs.add(pair);
        if (this.frozen) return;
        client.pipe(upstream);
        if (this.repliesLost) upstream.on('data', discard);
        else upstream.pipe(client);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    const address = this.server.address();
    this.port = typeof address === 'object' && address ? address.port : port;
  }

  /** Drops every connection and stops listening: the target looks down. */
  async cut(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.server = undefined;
  }

  /**
   * Stops relaying bytes while every connection stays open and new ones are accepted: the target
   * looks frozen (a stopped process, a partition), not down, so nothing fails until a timeout.
   */
  freeze(): void {
    this.frozen = true;
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  /** Relays again, bytes held during the freeze first. */
  thaw(): void {
    this.frozen = false;
    for (const [client, upstream] of this.pairs) client.pipe(upstream).pipe(client);
  }

  /**
   * Relays requests and drops every reply: statements reach the target and run, and their
   * answers never come back (a partition on the way back, a crash just after a commit).
   */
  loseReplies(): void {
    this.repliesLost = true;
    for (const [client, upstream] of this.pairs) {
      upstream.unpipe(client);
      upstream.on('data', discard);
    }
  }

  /** Relays replies again (connections that lost some are out of step; their clients drop them). */
  keepReplies(): void {
    this.repliesLost = false;
    for (const [client, upstream] of this.pairs) {
      upstream.off('data', discard);
      upstream.pipe(client);
    }
  }

  async restore(): Promise<void> {
    await this.start(this.port);
  }
}

function discard(): void {}

/**
 * A relay started in front of the Postgres server of `databaseUrl`, and that URL through it: a
 * gateway given `url` loses (or freezes with) its database when the test cuts (or freezes) it.
 */
export async function relayDatabase(
  databaseUrl: string,
): Promise<{ proxy: TcpProxy; url: string }> {
  const target = new URL(databaseUrl);
  const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
  await proxy.start();
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  return { proxy, url: url.toString() };
}
