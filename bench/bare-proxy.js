'use strict';
// The practical floor for a Node gateway: a reverse proxy that parses nothing. node:http
// server, upstream over a keep-alive Agent, bodies piped both ways (so SSE streams through).
//
// Env: PROXY_PORT (0 = any free port), UPSTREAM_URL (http://127.0.0.1:18080).
// Prints one JSON line {"listening": port} on stdout when ready.
const http = require('node:http');

const upstream = new URL(process.env.UPSTREAM_URL || 'http://127.0.0.1:18080');
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, scheduling: 'lifo' });
// Headers that describe one hop and must not be forwarded.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
]);

function endToEnd(headers) {
  const out = {};
  for (const name of Object.keys(headers)) if (!HOP_BY_HOP.has(name)) out[name] = headers[name];
  return out;
}

const server = http.createServer((req, res) => {
  const headers = endToEnd(req.headers);
  headers.host = upstream.host;
  const out = http.request(
    {
      host: upstream.hostname,
      port: upstream.port || 80,
      method: req.method,
      path: req.url,
      headers,
      agent,
    },
    (up) => {
      res.writeHead(up.statusCode, endToEnd(up.headers));
      up.pipe(res);
    },
  );
  out.on('error', (err) => {
    if (res.headersSent) return res.destroy(err);
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `upstream: ${err.code || err.message}` } }));
  });
  req.pipe(out);
  res.on('close', () => {
    if (!res.writableFinished) out.destroy();
  });
});

server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(Number(process.env.PROXY_PORT || 0), '127.0.0.1', () => {
  process.stdout.write(
    `${JSON.stringify({ listening: server.address().port, pid: process.pid })}\n`,
  );
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 500).unref();
  });
}
