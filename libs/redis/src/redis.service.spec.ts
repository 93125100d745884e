import type { Logger } from 'pino';
import { loadConfig } from '@app/config';
import { redisErrors } from './redis.metrics';
import { RedisService } from './redis.service';

const OOM = "OOM command not allowed when used memory > 'maxmemory'.";

/** A service that believes it is connected to a Redis whose every call fails with `err`. */
function serviceOnFailingRedis() {
  const config = loadConfig({ NODE_ENV: 'test', REDIS_URL: 'redis://127.0.0.1:1' });
  const logger = { warn: jest.fn(), error: jest.fn(), info: jest.fn(), debug: jest.fn() };
  const service = new RedisService(config, logger as unknown as Logger);
  Object.assign(service, { client: { status: 'ready' }, connected: true });
  return { service, logger };
}

const oomCount = async () =>
  (await redisErrors.get()).values.find((v) => v.labels.reason === 'oom')?.value ?? 0;

describe('RedisService.withFallback on a full Redis', () => {
  afterEach(() => jest.restoreAllMocks());

  it('answers a call Redis refuses for memory from process memory, without a fallback', async () => {
    const { service, logger } = serviceOnFailingRedis();
    const before = await oomCount();
    const result = await service.withFallback(
      () => Promise.reject(new Error(OOM)),
      () => 'memory',
    );
    expect(result).toBe('memory');
    expect(service.mode).toBe('redis');
    expect(await oomCount()).toBe(before + 1);
    expect(logger.error).not.toHaveBeenCalled();
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0][1]).toMatch(/^Redis refused a write: out of memory/);
  });

  it('recognises a refusal inside a script and in an aborted MULTI', async () => {
    const { service } = serviceOnFailingRedis();
    const script = new Error(`${OOM} script: e4b6, on @user_script:1.`);
    const multi = Object.assign(
      new Error('EXECABORT Transaction discarded because of previous errors.'),
      { previousErrors: [new Error(OOM)] },
    );
    for (const err of [script, multi])
      await expect(
        service.withFallback(
          () => Promise.reject(err),
          () => 'memory',
        ),
      ).resolves.toBe('memory');
    expect(service.mode).toBe('redis');
  });

  it('warns at most once a minute, with the number of refusals since the last warning', async () => {
    const { service, logger } = serviceOnFailingRedis();
    let now = 1_000_000;
    jest.spyOn(Date, 'now').mockImplementation(() => now);
    const refuse = () =>
      service.withFallback(
        () => Promise.reject(new Error(OOM)),
        () => 0,
      );
    for (let i = 0; i < 5; i++) await refuse();
    now += 59_000;
    await refuse();
    expect(logger.warn).toHaveBeenCalledTimes(1);
    now += 1_000;
    await refuse();
    expect(logger.warn).toHaveBeenCalledTimes(2);
    expect(logger.warn.mock.calls.map(([fields]) => fields.refused)).toEqual([1, 6]);
  });

  it('still rethrows an error that is neither an outage nor a refusal', async () => {
    const { service } = serviceOnFailingRedis();
    const wrongType = new Error(
      'WRONGTYPE Operation against a key holding the wrong kind of value',
    );
    await expect(
      service.withFallback(
        () => Promise.reject(wrongType),
        () => 0,
      ),
    ).rejects.toBe(wrongType);
  });
});

describe('RedisService pub/sub gaps', () => {
  /** A service whose subscriber connection is `subscriber` (its 'ready' replayed by hand). */
  function serviceWithSubscriber(subscribe: jest.Mock) {
    const { service, logger } = serviceOnFailingRedis();
    Object.assign(service, { subscriber: { subscribe } });
    const ready = () => (service as unknown as { resubscribed(): Promise<void> }).resubscribed();
    return { service, logger, ready };
  }

  it('tells the owners of subscriptions about a reconnect only once Redis confirmed them', async () => {
    let confirm!: () => void;
    const subscribe = jest.fn(() => new Promise<void>((resolve) => (confirm = resolve)));
    const { service, ready } = serviceWithSubscriber(subscribe);
    const gap = jest.fn();
    const other = jest.fn();
    service.subscribe('keys', () => undefined, gap);
    service.subscribe('other', () => undefined, other);
    subscribe.mockClear();

    const done = ready();
    expect(subscribe).toHaveBeenCalledWith(
      expect.stringMatching(/keys$/),
      expect.stringMatching(/other$/),
    );
    // Until the SUBSCRIBE is answered, messages can still be missed: too early to tell.
    expect(gap).not.toHaveBeenCalled();
    confirm();
    await done;
    expect(gap).toHaveBeenCalledTimes(1);
    expect(other).toHaveBeenCalledTimes(1);
  });

  it('says nothing while the resubscription fails, and a throwing owner does not silence others', async () => {
    const subscribe = jest.fn().mockResolvedValue(undefined);
    const { service, logger, ready } = serviceWithSubscriber(subscribe);
    const failing = jest.fn(() => {
      throw new Error('boom');
    });
    const gap = jest.fn();
    service.subscribe('a', () => undefined, failing);
    service.subscribe('b', () => undefined, gap);

    subscribe.mockRejectedValueOnce(new Error('Connection is closed.'));
    await ready();
    expect(gap).not.toHaveBeenCalled();
    await ready();
    expect(failing).toHaveBeenCalledTimes(1);
    expect(gap).toHaveBeenCalledTimes(1);
    expect(logger.warn).toHaveBeenCalledWith({ err: 'boom' }, 'pub/sub gap handler failed');
  });
});
