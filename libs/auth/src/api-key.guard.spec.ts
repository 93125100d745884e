import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { Reflector } from '@nestjs/core';
import { ApiError } from '@app/observability';
import type { ApiKeyAuthService } from './api-key-auth.service';
import { ApiKeyGuard } from './api-key.guard';
import type { Principal } from './principal';
import { PrincipalAdmission } from './principal-admission';

const principal: Principal = {
  userId: 'u1',
  apiKeyId: 'k1',
  keyPrefix: 'sk-test',
  scopes: ['chat'],
  rateLimitPerMinute: null,
  rateLimitPerHour: null,
  cacheScope: 'user',
};

class Probe {
  chat(): void {}
}

function setup(authenticate: () => Promise<Principal>) {
  const admission = new PrincipalAdmission();
  const auth = { authenticateHeaders: jest.fn(authenticate) } as unknown as ApiKeyAuthService;
  const guard = new ApiKeyGuard(auth, new Reflector(), admission);
  const request: { headers: Record<string, string>; principal?: Principal } = {
    headers: { authorization: 'Bearer sk-test' },
  };
  const reply = { raw: {} };
  const context = new ExecutionContextHost([request, reply], Probe, Probe.prototype.chat);
  context.setType('http');
  return { admission, guard, request, reply, context };
}

describe('ApiKeyGuard admission hooks', () => {
  it('runs every hook in order once the Principal is attached, with the guard context', async () => {
    const { admission, guard, request, reply, context } = setup(async () => principal);
    const seen: string[] = [];
    admission.use({
      name: 'second',
      order: 20,
      admit: () => void seen.push('second'),
    });
    admission.use({
      name: 'first',
      order: 10,
      admit: async (ctx, req, res) => {
        expect(req.principal).toBe(principal);
        expect(res).toBe(reply);
        expect(ctx.getHandler()).toBe(Probe.prototype.chat);
        seen.push('first');
      },
    });
    await expect(guard.canActivate(context)).resolves.toBe(true);
    expect(seen).toEqual(['first', 'second']);
    expect(request.principal).toBe(principal);
  });

  it('replaces a hook registered again under the same name', async () => {
    const { admission, guard, context } = setup(async () => principal);
    const calls: number[] = [];
    admission.use({ name: 'limit', admit: () => void calls.push(1) });
    admission.use({ name: 'limit', admit: () => void calls.push(2) });
    await guard.canActivate(context);
    expect(calls).toEqual([2]);
    expect(admission.list()).toHaveLength(1);
  });

  it('refuses the request when a hook throws, and later hooks do not run', async () => {
    const { admission, guard, context } = setup(async () => principal);
    const later = jest.fn();
    admission.use({
      name: 'limit',
      order: 10,
      admit: () => {
        throw new ApiError(429, 'rate_limit_error', 'rate_limit_exceeded', 'slow down');
      },
    });
    admission.use({ name: 'later', order: 20, admit: later });
    await expect(guard.canActivate(context)).rejects.toMatchObject({ status: 429 });
    expect(later).not.toHaveBeenCalled();
  });

  it('runs no hook for a request that fails authentication', async () => {
    const { admission, guard, request, context } = setup(async () => {
      throw ApiError.unauthorized('Invalid API key');
    });
    const hook = jest.fn();
    admission.use({ name: 'limit', admit: hook });
    await expect(guard.canActivate(context)).rejects.toMatchObject({ status: 401 });
    expect(hook).not.toHaveBeenCalled();
    expect(request.principal).toBeUndefined();
  });
});
