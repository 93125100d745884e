import { Body, Controller, Get, Param, Post, Query, UseGuards } from '@nestjs/common';
import { z } from 'zod';
import { ApiError } from '@app/observability';
import { baseQuotaField, usernameField } from './account-fields';
import { AdminGuard } from './admin.guard';
import { CurrentAdmin } from './auth.decorators';
import { decodeCursor, parseLimit } from './pagination';
import { MIN_PASSWORD_LENGTH } from './password';
import { AdminIdentity } from './principal';
import { UserView } from './user.types';
import { UsersService } from './users.service';
import { requireUuid } from './uuid';
import { parseInput } from './validation';

const createUser = z.strictObject({
  username: usernameField,
  email: z.email().max(320).nullish(),
  role: z.enum(['admin', 'user']).default('user'),
  password: z.string().min(MIN_PASSWORD_LENGTH).max(1024).optional(),
  base_quota: baseQuotaField.default(0),
  subscription_tier: z.string().min(1).max(50).optional(),
});

@Controller('admin/users')
@UseGuards(AdminGuard)
export class AdminUsersController {
  constructor(private readonly users: UsersService) {}

  @Get()
  list(@Query('limit') limit?: string, @Query('cursor') cursor?: string) {
    return this.users.list(parseLimit(limit), decodeCursor(cursor));
  }

  @Get(':id')
  async get(@Param('id') id: string): Promise<UserView> {
    const user = await this.users.findById(requireUuid(id));
    if (!user) throw ApiError.notFound('No user with this id', 'user_not_found');
    return user;
  }

  @Post()
  create(@Body() body: unknown, @CurrentAdmin() admin: AdminIdentity): Promise<UserView> {
    const input = parseInput(createUser, body);
    return this.users.create(
      {
        username: input.username,
        email: input.email ?? null,
        role: input.role,
        password: input.password,
        baseQuota: input.base_quota,
        subscriptionTier: input.subscription_tier,
      },
      admin.username,
    );
  }
}
