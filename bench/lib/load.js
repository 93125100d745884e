'use strict';
// Load generation: autocannon (used as a library) for throughput and latency, and a small
// sequential client for the time to the first streamed chunk, which autocannon cannot see.
const http = require('node:http');
const { randomBytes } = require('node:crypto');

/** Marker replaced by a unique id per request (autocannon's idReplacement uses the same). */
const ID_MARKER = '[<id>]';

/** A setupRequest hook giving every request its own id in the body. */
function uniqueBodies(template) {
  const [head, tail] = template.split(ID_MARKER, 2);
  const salt = randomBytes(4).toString('hex');
  let counter = 0;
  return (req) => {
    req.body = `${head}${salt}-${counter++}${tail}`;
    return req;
  };
}

/**
 * One autocannon run. Latency comes from autocannon's per-response timer (float ms) and is
 * kept raw: its own histogram rounds to whole milliseconds, too coarse at c=1.
 */
function runAutocannon(autocannon, target, { connections, seconds, record }) {
  return new Promise((resolve, reject) => {
    const latencies = [];
    let responses = 0;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const instance = autocannon(
      {
        url: target.url,
        method: 'POST',
        headers: target.headers,
        body: target.body,
        // autocannon's own idReplacement assumes ids of 27 bytes in Content-Length, which
        // its current id generator does not produce: requests hang. Build the body here.
        requests: target.body.includes(ID_MARKER)
          ? [{ setupRequest: uniqueBodies(target.body) }]
          : undefined,
        connections,
        pipelining: 1,
        duration: seconds,
        timeout: 10,
      },
      (err, result) => {
        if (err) return reject(err);
        const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpu = process.cpuUsage(cpu0);
        resolve({
          latencies,
          responses,
          elapsed,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          loadgenCpuSeconds: (cpu.user + cpu.system) / 1e6,
        });
      },
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      responses++;
      if (record && status >= 200 && status < 300) latencies.push(ms);
    });
  });
}

/**
 * Sequential streaming requests (c=1) for `seconds`: time to the first body chunk (TTFC)
 * and to the end of the stream, per request. A keep-alive agent with one socket keeps the
 * connection warm, as autocannon does.
 */
async function runStreamingClient(target, { seconds, record }) {
  const url = new URL(target.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ttfc = [];
  const total = [];
  let responses = 0;
  let non2xx = 0;
  let errors = 0;
  let counter = 0;
  const salt = randomBytes(4).toString('hex');
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const body = target.body.split(ID_MARKER).join(`${salt}-${counter++}`);
    try {
      const r = await streamOnce(url, agent, target.headers, body);
      responses++;
      if (r.status < 200 || r.status >= 300 || !r.sawData) non2xx++;
      else if (record) {
        ttfc.push(r.firstChunkMs);
        total.push(r.totalMs);
      }
    } catch {
      errors++;
    }
  }
  agent.destroy();
  const cpu = process.cpuUsage(cpu0);
  return {
    latencies: total,
    ttfc,
    responses,
    elapsed: Number(process.hrtime.bigint() - t0) / 1e9,
    non2xx,
    errors,
    timeouts: 0,
    loadgenCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

function streamOnce(url, agent, headers, body) {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let firstChunkMs = null;
    let sawData = false;
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent,
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        timeout: 10_000,
      },
      (res) => {
        res.on('data', (chunk) => {
          if (firstChunkMs === null) firstChunkMs = Number(process.hrtime.bigint() - start) / 1e6;
          if (!sawData && chunk.includes('data:')) sawData = true;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            sawData,
            firstChunkMs,
            totalMs: Number(process.hrtime.bigint() - start) / 1e6,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** One plain request, returning status, headers and text (preflight checks). */
async function requestOnce(target, body = target.body) {
  const res = await fetch(target.url, {
    method: 'POST',
    headers: target.headers,
    body: body.split(ID_MARKER).join(`preflight-${randomBytes(4).toString('hex')}`),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

module.exports = { ID_MARKER, runAutocannon, runStreamingClient, requestOnce };
