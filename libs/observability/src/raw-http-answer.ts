import { STATUS_CODES } from 'node:http';

/**
 * A whole HTTP/1.1 answer with a JSON error body, as text, for a socket no HTTP server will answer
 * on: a request Node's parser refused, or an upgrade request refused before it became a
 * WebSocket. It closes the connection; the caller writes it and ends the socket.
 */
export function rawHttpAnswer(
  status: number,
  json: string,
  headers: Record<string, string | number> = {},
): string {
  const fields = {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(json),
    connection: 'close',
  };
  const head = Object.entries(fields).map(([name, value]) => `${name}: ${value}\r\n`);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${head.join('')}\r\n${json}`;
}
