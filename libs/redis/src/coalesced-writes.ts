import type { Socket } from 'node:net';

/**
 * Makes the commands written to `socket` during one turn of the event loop leave in one system
 * call. Under load many requests reach their rate-limit and cache calls while the loop handles
 * the same batch of I/O; without this each command is its own write. The socket is corked at
 * the first write of a turn and uncorked when the turn's I/O phase ends (setImmediate), so a lone
 * command waits only for the callbacks already running.
 *
 * ioredis writes every command with `stream.write` on the connection's socket, so wrapping that
 * one method is enough; replies are read as before.
 */
export function coalesceWrites(socket: Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function coalescedWrite(this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    return write.apply(this, args);
  } as Socket['write'];
}
