import { Controller } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { PrincipalAdmission } from '@app/auth';
import { RateLimitAdmission } from './rate-limit.admission';
import { SkipRateLimit } from './rate-limit.decorators';
import type { RateLimitService } from './rate-limit.service';

@Controller()
class Limited {
  chat(): void {}
  @SkipRateLimit()
  status(): void {}
}

@Controller()
@SkipRateLimit()
class Unlimited {
  poll(): void {}
}

function setup() {
  const enforceOnce = jest.fn(async () => undefined);
  const admission = new PrincipalAdmission();
  const hook = new RateLimitAdmission(
    { enforceOnce } as unknown as RateLimitService,
    new Reflector(),
    admission,
  );
  hook.onModuleInit();
  const request = { principal: { apiKeyId: 'k1' } };
  const reply = { raw: {} };
  const admit = (cls: new () => object, handler: () => void) =>
    admission.admit(
      new ExecutionContextHost([request, reply], cls as never, handler),
      request as never,
      reply as never,
    );
  return { enforceOnce, admission, request, reply, admit };
}

describe('RateLimitAdmission', () => {
  it('registers itself with PrincipalAdmission on module init', () => {
    const { admission } = setup();
    expect(admission.list().map((h) => h.name)).toEqual(['rate-limit']);
  });

  it('counts a request on an ordinary API-key route, with its reply for the headers', async () => {
    const { enforceOnce, request, reply, admit } = setup();
    await admit(Limited, Limited.prototype.chat);
    expect(enforceOnce).toHaveBeenCalledTimes(1);
    expect(enforceOnce).toHaveBeenCalledWith(request, reply);
  });

  it('leaves out a handler or a controller marked @SkipRateLimit()', async () => {
    const { enforceOnce, admit } = setup();
    await admit(Limited, Limited.prototype.status);
    await admit(Unlimited, Unlimited.prototype.poll);
    expect(enforceOnce).not.toHaveBeenCalled();
  });

  it('lets a refusal through unchanged (the guard turns it into the response)', async () => {
    const { enforceOnce, admit } = setup();
    const refusal = new Error('429');
    enforceOnce.mockRejectedValueOnce(refusal);
    await expect(admit(Limited, Limited.prototype.chat)).rejects.toBe(refusal);
  });
});
