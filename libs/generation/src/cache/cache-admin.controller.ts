import { Controller, Delete, Get, Query, UseGuards } from '@nestjs/common';
import { AdminGuard, AuditService, CurrentAdmin, requireUuid } from '@app/auth';
import type { AdminIdentity } from '@app/auth';
import { ApiError } from '@app/observability';
import { CacheStats, ResponseCacheService } from './response-cache.service';

/** GET /admin/cache/stats and DELETE /admin/cache[?user_id=&model=] (seed 001/003 procedures). */
@Controller('admin/cache')
@UseGuards(AdminGuard)
export class CacheAdminController {
  constructor(
    private readonly cache: ResponseCacheService,
    private readonly audit: AuditService,
  ) {}

  @Get('stats')
  stats(): Promise<CacheStats> {
    return this.cache.stats();
  }

  @Delete()
  async clear(
    @CurrentAdmin() admin: AdminIdentity,
    @Query() query: Record<string, unknown>,
  ): Promise<{ deleted: number; user_id: string | null; model: string | null }> {
    const selector = parseClearQuery(query);
    const deleted = await this.cache.clear(selector);
    await this.audit.record(admin.username, 'cache.clear', null, {
      user_id: selector.userId ?? null,
      model: selector.model ?? null,
      deleted,
    });
    return { deleted, user_id: selector.userId ?? null, model: selector.model ?? null };
  }
}

const CLEAR_PARAMS = ['user_id', 'model'];

/**
 * DELETE /admin/cache's filters. Any other parameter is refused rather than ignored: with the
 * filter dropped, a typo such as `?userid=` would clear every user's entries.
 */
function parseClearQuery(query: Record<string, unknown>): { userId?: string; model?: string } {
  const unknown = Object.keys(query).find((name) => !CLEAR_PARAMS.includes(name));
  if (unknown !== undefined)
    throw ApiError.badRequest(
      `Unknown query parameter: ${unknown} (DELETE /admin/cache takes user_id and model)`,
      unknown,
    );
  const userId = single(query, 'user_id');
  const model = single(query, 'model');
  return {
    userId: userId === undefined ? undefined : requireUuid(userId, 'user_id'),
    model: model === undefined ? undefined : requireModel(model),
  };
}

/** A repeated parameter (`?model=a&model=b`) is ambiguous: refused, not narrowed to one. */
function single(query: Record<string, unknown>, name: string): string | undefined {
  const value = query[name];
  if (value === undefined || typeof value === 'string') return value;
  throw ApiError.badRequest(`${name} must be given once`, name);
}

function requireModel(model: string): string {
  if (model.length === 0 || model.length > 200)
    throw ApiError.badRequest('model must be 1 to 200 characters', 'model');
  return model;
}
