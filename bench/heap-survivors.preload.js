'use strict';
/**
 * Preload for the gateway: V8's sampling heap profiler keeping only objects that outlive the
 * young generation (docs/performance.md, "The p99 tail at c=1"). Sampling starts
 * HEAPSAMPLE_DELAY_MS (5000) after start; SIGUSR2 writes heap-<pid>.heapprofile to
 * HEAPSAMPLE_DIR (the working directory), which Chrome DevTools opens.
 *
 *   BENCH_GATEWAY_NODE_ARGS="-r ./bench/heap-survivors.preload.js" BENCH_QUICK=1 ROUNDS=1 \
 *     DURATION=60 SCENARIOS=chat-c1 npm run bench      # then: kill -USR2 <gateway pid>
 */
const fs = require('node:fs');
const inspector = require('node:inspector');
const path = require('node:path');

const session = new inspector.Session();
session.connect();
setTimeout(
  () => {
    session.post('HeapProfiler.enable', () =>
      session.post('HeapProfiler.startSampling', {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: false,
      }),
    );
  },
  Number(process.env.HEAPSAMPLE_DELAY_MS || 5000),
).unref();

process.on('SIGUSR2', () => {
  session.post('HeapProfiler.getSamplingProfile', (err, result) => {
    if (err) return console.error('heap profile failed', err);
    const file = path.join(process.env.HEAPSAMPLE_DIR || '.', `heap-${process.pid}.heapprofile`);
    fs.writeFileSync(file, JSON.stringify(result.profile));
    console.error(`heap profile written to ${file}`);
  });
});
