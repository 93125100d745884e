import { AddressInfo, createServer, Server, Socket, connect } from 'node:net';
import { coalesceWrites } from './coalesced-writes';

describe('coalesceWrites', () => {
  let server: Server;
  let received: Buffer[];
  let socket: Socket;

  beforeEach(async () => {
    received = [];
    server = createServer((peer) => peer.on('data', (chunk) => received.push(chunk)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
  });

  afterEach(async () => {
    socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  const arrived = async (bytes: number) => {
    while (Buffer.concat(received).length < bytes) await new Promise((r) => setTimeout(r, 5));
    return Buffer.concat(received).toString();
  };

  it('sends the writes of one turn in one system call, in order', async () => {
    const writev = jest.spyOn(socket as unknown as { _writev: () => void }, '_writev');
    const single = jest.spyOn(socket as unknown as { _write: () => void }, '_write');
    coalesceWrites(socket);
    socket.write('a');
    socket.write('bb');
    await Promise.resolve();
    socket.write('ccc'); // a promise continuation in the same turn
    expect(writev).not.toHaveBeenCalled();
    expect(await arrived(6)).toBe('abbccc');
    expect(writev).toHaveBeenCalledTimes(1);
    expect(single).not.toHaveBeenCalled();
  });

  it('starts a new batch in the next turn', async () => {
    const writev = jest.spyOn(socket as unknown as { _writev: () => void }, '_writev');
    const single = jest.spyOn(socket as unknown as { _write: () => void }, '_write');
    coalesceWrites(socket);
    socket.write('1');
    socket.write('2');
    await arrived(2);
    socket.write('3');
    await arrived(3);
    expect(writev).toHaveBeenCalledTimes(1);
    expect(single).toHaveBeenCalledTimes(1); // a lone write in its turn
    expect(Buffer.concat(received).toString()).toBe('123');
  });
});
