import type { Logger } from 'pino';
import type { GenerationContext, GenerationOutcome, StoredAnswer } from './generation-context';
import { GenerationPipeline, GenerationPlugin } from './generation-pipeline.service';

const ctx = {} as GenerationContext;
const outcome = { status: 'succeeded' } as GenerationOutcome;
const answer = { body: { id: 'cached' }, provider: 'cache' } as unknown as StoredAnswer;

function pipelineWith(calls: string[], errors: unknown[] = []): GenerationPipeline {
  const logger = { error: (fields: { err: unknown }) => errors.push(fields.err) };
  const pipeline = new GenerationPipeline(logger as unknown as Logger);
  const plugin = (
    name: string,
    order: number,
    steps: Partial<Record<keyof GenerationPlugin, unknown>>,
  ): GenerationPlugin => ({ name, order, ...steps }) as GenerationPlugin;
  const step = (label: string) => async () => void calls.push(label);
  pipeline.use(
    plugin('credits', 40, {
      beforeUpstream: step('credits.beforeUpstream'),
      finish: step('credits.finish'),
    }),
  );
  pipeline.use(
    plugin('rate-limit', 10, {
      admit: step('rate-limit.admit'),
      finish: step('rate-limit.finish'),
    }),
  );
  pipeline.use(
    plugin('cache', 30, {
      lookup: async () => (calls.push('cache.lookup'), answer),
      finish: async () => {
        calls.push('cache.finish');
        throw new Error('cache store failed');
      },
    }),
  );
  pipeline.use(plugin('conversations', 20, { prepare: step('conversations.prepare') }));
  pipeline.use(plugin('idempotency', 5, { lookup: step('idempotency.lookup') }));
  return pipeline;
}

describe('GenerationPipeline', () => {
  it('runs each step of the plugins that have it, in order, and skips the rest', async () => {
    const calls: string[] = [];
    const errors: unknown[] = [];
    const pipeline = pipelineWith(calls, errors);
    await pipeline.admit(ctx);
    await pipeline.prepare(ctx);
    expect(await pipeline.lookup(ctx)).toBe(answer);
    await pipeline.beforeUpstream(ctx);
    await pipeline.finish(ctx, outcome);
    expect(calls).toEqual([
      'rate-limit.admit',
      'conversations.prepare',
      'idempotency.lookup',
      'cache.lookup',
      'credits.beforeUpstream',
      'rate-limit.finish',
      'cache.finish',
      'credits.finish',
    ]);
    expect(errors).toEqual([new Error('cache store failed')]);
  });

  it('replaces a plugin registered again under its name, in every step', async () => {
    const calls: string[] = [];
    const pipeline = pipelineWith(calls);
    pipeline.use({ name: 'cache', order: 30, lookup: async () => undefined });
    expect(pipeline.list().map((p) => p.name)).toEqual([
      'idempotency',
      'rate-limit',
      'conversations',
      'cache',
      'credits',
    ]);
    expect(await pipeline.lookup(ctx)).toBeUndefined();
    await pipeline.finish(ctx, outcome);
    expect(calls).toEqual(['idempotency.lookup', 'rate-limit.finish', 'credits.finish']);
  });
});
