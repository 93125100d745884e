import {
  Body,
  Controller,
  Get,
  Inject,
  NotFoundException,
  Param,
  Patch,
  UseGuards,
} from '@nestjs/common';
import { z } from 'zod';
import { AdminGuard, AdminIdentity, AuditService, CurrentAdmin, requireUuid } from '@app/auth';
import { CircuitBreakerService } from '@app/circuit-breaker';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ApiError } from '@app/observability';
import { parseBody } from '../pipeline/validation';
import { checkBaseUrlChange } from './base-url-policy';
import { toProviderView } from './provider.types';
import { ProviderRegistry } from './provider-registry.service';

const patchSchema = z
  .object({
    priority: z.number().int().min(0).max(1_000_000).optional(),
    enabled: z.boolean().optional(),
    timeout_ms: z.number().int().min(100).max(3_600_000).optional(),
    /** Checked against PROVIDER_BASE_URL_ALLOWLIST (SSRF guard; base-url-policy.ts). */
    base_url: z.string().min(1).max(2048).optional(),
    settings: z
      .object({
        latency_ms: z.number().int().min(0).max(600_000).optional(),
        chunk_delay_ms: z.number().int().min(0).max(60_000).optional(),
        error_rate: z.number().min(0).max(1).optional(),
        fail_status: z.number().int().min(400).max(599).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((p) => Object.keys(p).length > 0, {
    message: 'send at least one of priority, enabled, timeout_ms, base_url, settings',
  });

/** Seed 002 "switch provider, update priority": run-time control over routing. */
@Controller('admin/providers')
@UseGuards(AdminGuard)
export class ProvidersController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly registry: ProviderRegistry,
    private readonly breakers: CircuitBreakerService,
    private readonly audit: AuditService,
  ) {}

  @Get()
  async list() {
    const breakers = new Map((await this.breakers.list()).map((b) => [b.name, b.state]));
    return {
      data: this.registry
        .list()
        .map((p) => ({ ...toProviderView(p), breaker_state: breakers.get(p.name) ?? 'closed' })),
      next_cursor: null,
    };
  }

  @Patch(':id')
  async update(
    @Param('id') rawId: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminIdentity,
  ) {
    const id = requireUuid(rawId);
    const patch = parseBody(patchSchema, body);
    const current = this.registry.list().find((p) => p.id === id);
    if (!current) throw ApiError.notFound(`No provider with id ${id}`, 'provider_not_found', 'id');
    if (patch.settings && current.kind !== 'mock')
      throw ApiError.badRequest('settings apply to mock providers only', 'settings');
    if (patch.base_url !== undefined) {
      if (current.kind === 'mock')
        throw ApiError.badRequest('the built-in mock provider has no base_url', 'base_url');
      patch.base_url = checkBaseUrlChange(patch.base_url, this.config.upstream.baseUrlAllowlist);
    }
    const settings = patch.settings ? { ...current.mock, ...patch.settings } : undefined;
    const updated = await this.registry.update(id, { ...patch, settings });
    if (!updated) throw new NotFoundException();
    await this.audit.record(admin.username, 'provider.update', updated.name, {
      id,
      before: {
        priority: current.priority,
        enabled: current.enabled,
        timeout_ms: current.timeoutMs,
        base_url: current.baseUrl,
        settings: current.mock,
      },
      after: patch,
    });
    // A disabled provider gets no traffic, so an open or half-open breaker could never close:
    // CircuitBreakerOpen would fire on for a provider nothing is routed to.
    if (current.enabled && !updated.enabled && this.breakers.has(updated.name)) {
      await this.breakers.reset(updated.name, `${admin.username} (provider disabled)`);
      await this.audit.record(admin.username, 'circuit_breaker.reset', updated.name, {
        reason: 'provider disabled',
      });
    }
    return toProviderView(updated);
  }
}
