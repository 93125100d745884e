import pino from 'pino';
import { loadConfig } from '@app/config';
import type { DatabaseService } from '@app/database';
import { JobQueue } from '../libs/jobs/src/job-queue.service';
import { createTestDatabase, dropDatabase } from './support/gateway';

/** The job queue of one replica: what the gateway builds, minus the rest of the gateway. */
function replicaQueue(url: string): JobQueue {
  const config = loadConfig({ ...process.env, DATABASE_URL: url });
  const database = { rawDataSource: { options: { url } } } as unknown as DatabaseService;
  return new JobQueue(config, pino({ level: 'silent' }), database);
}

/**
 * Replicas that boot together on a new database install pg-boss's queues at the same moment.
 * pg-boss's create_queue takes no lock, so Postgres aborted one of them as a deadlock and that
 * replica ran without a queue or workers ("job queue failed to start: deadlock detected").
 */
describe('job queue on a new database', () => {
  it('starts on every replica that boots at the same time', async () => {
    for (let round = 0; round < 3; round++) {
      const url = await createTestDatabase();
      const queues = [replicaQueue(url), replicaQueue(url)];
      try {
        const started = await Promise.allSettled(queues.map((queue) => queue.start()));
        expect(started.map((r) => (r.status === 'fulfilled' ? 'ok' : String(r.reason)))).toEqual([
          'ok',
          'ok',
        ]);
        expect(queues.map((queue) => queue.status.state)).toEqual(['running', 'running']);
      } finally {
        await Promise.all(queues.map((queue) => queue.stop(1000)));
        await dropDatabase(url);
      }
    }
  });
});
