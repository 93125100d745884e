'use strict';
// OpenAI-compatible upstream for the benchmark, on node:http with no dependencies.
//
//   POST /v1/chat/completions  a fixed chat.completion with usage, or SSE chunks ending in
//                              `data: [DONE]` when the body says "stream": true
//   GET  /v1/models            a fixed model list
//   GET  /health               {"ok":true}
//   POST /__bench/config       {"delayMs": n, "chunkDelayMs": n} changes the timing at run
//                              time, so one mock serves every scenario of a run
//
// Env: MOCK_PORT (0 = any free port), MOCK_DELAY_MS, MOCK_STREAM_CHUNK_DELAY_MS.
// Prints one JSON line {"listening": port} on stdout when ready.
const http = require('node:http');

const timing = {
  delayMs: Number(process.env.MOCK_DELAY_MS || 0),
  chunkDelayMs: Number(process.env.MOCK_STREAM_CHUNK_DELAY_MS || 0),
};
const BODY_LIMIT = 4 * 1024 * 1024;
const CREATED = 1732300000;
const REPLY = 'Hello! This is the benchmark upstream answering.';
const USAGE = { prompt_tokens: 12, completion_tokens: 11, total_tokens: 23 };

function completion(model) {
  return JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: CREATED,
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: REPLY },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: USAGE,
    system_fingerprint: 'fp_bench',
  });
}

const PIECES = ['Hello', '! This is', ' the benchmark', ' upstream', ' streaming.'];
function chunks(model) {
  const frame = (choice, extra = {}) =>
    `data: ${JSON.stringify({
      id: 'chatcmpl-bench',
      object: 'chat.completion.chunk',
      created: CREATED,
      model,
      system_fingerprint: 'fp_bench',
      choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }],
      ...extra,
    })}\n\n`;
  return [
    frame({ delta: { role: 'assistant', content: '' } }),
    ...PIECES.map((p) => frame({ delta: { content: p } })),
    frame(
      { delta: {}, finish_reason: 'stop' },
      { usage: { prompt_tokens: 12, completion_tokens: 9, total_tokens: 21 } },
    ),
    'data: [DONE]\n\n',
  ];
}

const MODELS = JSON.stringify({
  object: 'list',
  data: [
    { id: 'bench-model', object: 'model', created: CREATED, owned_by: 'bench' },
    { id: 'bench-model-free', object: 'model', created: CREATED, owned_by: 'bench' },
  ],
});

function json(res, status, text) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req, done) {
  const parts = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > BODY_LIMIT) req.destroy();
    else parts.push(c);
  });
  req.on('end', () => {
    if (size === 0) return done(null, {});
    try {
      done(null, JSON.parse(Buffer.concat(parts).toString('utf8')));
    } catch (err) {
      done(err);
    }
  });
  req.on('error', done);
}

function afterDelay(fn) {
  if (timing.delayMs > 0) setTimeout(fn, timing.delayMs);
  else fn();
}

function stream(res, model) {
  const events = chunks(model);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  if (timing.chunkDelayMs <= 0) {
    res.end(events.join(''));
    return;
  }
  let i = 0;
  const next = () => {
    if (res.destroyed) return;
    res.write(events[i++]);
    if (i < events.length) setTimeout(next, timing.chunkDelayMs);
    else res.end();
  };
  next();
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?', 1)[0];
  if (req.method === 'POST' && path === '/v1/chat/completions') {
    return readBody(req, (err, body) => {
      if (err) {
        return json(
          res,
          400,
          '{"error":{"message":"invalid JSON","type":"invalid_request_error"}}',
        );
      }
      const model = typeof body.model === 'string' ? body.model : 'bench-model';
      afterDelay(() =>
        body.stream === true ? stream(res, model) : json(res, 200, completion(model)),
      );
    });
  }
  if (req.method === 'GET' && path === '/v1/models')
    return afterDelay(() => json(res, 200, MODELS));
  if (req.method === 'GET' && path === '/health') return json(res, 200, '{"ok":true}');
  if (req.method === 'POST' && path === '/__bench/config') {
    return readBody(req, (err, body) => {
      if (err) return json(res, 400, '{"error":"invalid JSON"}');
      if (Number.isFinite(body.delayMs)) timing.delayMs = body.delayMs;
      if (Number.isFinite(body.chunkDelayMs)) timing.chunkDelayMs = body.chunkDelayMs;
      json(res, 200, JSON.stringify(timing));
    });
  }
  req.resume();
  json(res, 404, JSON.stringify({ error: { message: `no route ${req.method} ${path}` } }));
});

// Longer than any client's idle timeout, so the server never closes a pooled connection first.
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(Number(process.env.MOCK_PORT || 0), '127.0.0.1', () => {
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
