import {
  Body,
  Controller,
  Delete,
  Get,
  Param,
  Patch,
  Post,
  Query,
  UseGuards,
} from '@nestjs/common';
import { z } from 'zod';
import { AdminGuard } from './admin.guard';
import { ApiKeyChanges } from './api-key.repository';
import { rateLimitField } from './account-fields';
import { ALL_SCOPES, ApiKeyView } from './api-key.types';
import { ApiKeysService, DEFAULT_ROTATION_GRACE_SECONDS, IssuedKey } from './api-keys.service';
import { CurrentAdmin } from './auth.decorators';
import { decodeCursor, parseLimit } from './pagination';
import { AdminIdentity } from './principal';
import { requireUuid } from './uuid';
import { parseInput } from './validation';

const futureDate = z.iso
  .datetime({ offset: true })
  .transform((v) => new Date(v))
  .refine((d) => d.getTime() > Date.now(), 'must be in the future');

const keyFields = {
  name: z.string().trim().min(1).max(100),
  scopes: z
    .array(z.enum(ALL_SCOPES))
    .min(1)
    .transform((s) => [...new Set(s)]),
  rate_limit_per_minute: rateLimitField.nullable(),
  rate_limit_per_hour: rateLimitField.nullable(),
  expires_at: futureDate.nullable(),
  cache_scope: z.enum(['user', 'shared']),
};

const createKey = z.strictObject({
  // The format is checked by requireUuid, so a malformed id is 400 `invalid_id` here as in the
  // ?user_id= query and the :id path.
  user_id: z.string(),
  name: keyFields.name,
  scopes: keyFields.scopes.optional(),
  rate_limit_per_minute: keyFields.rate_limit_per_minute.optional(),
  rate_limit_per_hour: keyFields.rate_limit_per_hour.optional(),
  expires_at: keyFields.expires_at.optional(),
  cache_scope: keyFields.cache_scope.optional(),
});

const updateKey = z.strictObject({
  name: keyFields.name.optional(),
  scopes: keyFields.scopes.optional(),
  rate_limit_per_minute: keyFields.rate_limit_per_minute.optional(),
  rate_limit_per_hour: keyFields.rate_limit_per_hour.optional(),
  expires_at: keyFields.expires_at.optional(),
  cache_scope: keyFields.cache_scope.optional(),
});

const rotateKey = z
  .strictObject({
    grace_period_seconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 24 * 3600)
      .default(DEFAULT_ROTATION_GRACE_SECONDS),
  })
  .default({ grace_period_seconds: DEFAULT_ROTATION_GRACE_SECONDS });

@Controller('admin/keys')
@UseGuards(AdminGuard)
export class AdminKeysController {
  constructor(private readonly keys: ApiKeysService) {}

  @Get()
  list(
    @Query('user_id') userId?: string,
    @Query('limit') pageSize?: string,
    @Query('cursor') cursor?: string,
  ) {
    return this.keys.list(
      { userId: userId ? requireUuid(userId, 'user_id') : undefined },
      parseLimit(pageSize),
      decodeCursor(cursor),
    );
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<ApiKeyView> {
    return this.keys.get(requireUuid(id));
  }

  @Post()
  create(@Body() body: unknown, @CurrentAdmin() admin: AdminIdentity): Promise<IssuedKey> {
    const input = parseInput(createKey, body);
    return this.keys.create(
      {
        userId: requireUuid(input.user_id, 'user_id'),
        name: input.name,
        scopes: input.scopes,
        rateLimitPerMinute: input.rate_limit_per_minute,
        rateLimitPerHour: input.rate_limit_per_hour,
        expiresAt: input.expires_at,
        cacheScope: input.cache_scope,
      },
      admin.username,
    );
  }

  @Patch(':id')
  update(
    @Param('id') id: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminIdentity,
  ): Promise<ApiKeyView> {
    const keyId = requireUuid(id);
    const input = parseInput(updateKey, body);
    const changes: ApiKeyChanges = {
      name: input.name,
      scopes: input.scopes,
      rateLimitPerMinute: input.rate_limit_per_minute,
      rateLimitPerHour: input.rate_limit_per_hour,
      expiresAt: input.expires_at,
      cacheScope: input.cache_scope,
    };
    return this.keys.update(keyId, changes, admin.username);
  }

  @Post(':id/rotate')
  rotate(
    @Param('id') id: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminIdentity,
  ): Promise<IssuedKey & { old_key: ApiKeyView }> {
    const keyId = requireUuid(id);
    const input = parseInput(rotateKey, body ?? undefined);
    return this.keys.rotate(keyId, input.grace_period_seconds, admin.username);
  }

  @Delete(':id')
  revoke(@Param('id') id: string, @CurrentAdmin() admin: AdminIdentity): Promise<ApiKeyView> {
    return this.keys.revoke(requireUuid(id), admin.username);
  }
}
