import { Injectable, OnModuleInit } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { PrincipalAdmission } from '@app/auth';
import type { Principal, PrincipalAdmissionHook } from '@app/auth';
import { ResponseCacheService } from './response-cache.service';

const CHAT_ROUTE = '/v1/chat/completions';

/**
 * Starts a chat completion's cache read right after authentication, ahead of the rate-limit
 * check (order 5, before its 10). The check's script is written to Redis in the same event-loop
 * turn, so both go in one write and come back together: the lookup later finds its answer
 * already there instead of making a round trip of its own. Refuses nothing.
 */
@Injectable()
export class CachePrefetchAdmission implements PrincipalAdmissionHook, OnModuleInit {
  readonly name = 'response-cache-prefetch';
  readonly order = 5;

  constructor(
    private readonly cache: ResponseCacheService,
    private readonly admission: PrincipalAdmission,
  ) {}

  onModuleInit(): void {
    this.admission.use(this);
  }

  admit(_context: unknown, request: FastifyRequest & { principal: Principal }): void {
    if (request.method !== 'POST' || request.routeOptions?.url !== CHAT_ROUTE) return;
    this.cache.prefetch(request.body, request.headers, request.principal);
  }
}
