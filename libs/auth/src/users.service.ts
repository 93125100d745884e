import { Injectable } from '@nestjs/common';
import { DatabaseService } from '@app/database';
import { ApiError } from '@app/observability';
import { AuditService } from './audit.service';
import { CreditGrantRepository } from './credit-grant.repository';
import { PageCursor, toPage } from './pagination';
import { hashPassword, verifyPassword } from './password';
import { UserRecord, UserRole, UserView } from './user.types';
import { UsersRepository, UserWithCredits } from './users.repository';

export interface NewUserInput {
  username: string;
  email?: string | null;
  role?: UserRole;
  password?: string;
  baseQuota?: number;
  subscriptionTier?: string;
}

/** The idempotency key of a user's first grant; a retried creation never grants twice. */
export const INITIAL_GRANT_KEY = 'initial-grant';

@Injectable()
export class UsersService {
  constructor(
    private readonly db: DatabaseService,
    private readonly users: UsersRepository,
    private readonly grants: CreditGrantRepository,
    private readonly audit: AuditService,
  ) {}

  async findById(id: string): Promise<UserView | undefined> {
    const user = await this.users.findById(id);
    return user ? toUserView(user) : undefined;
  }

  async findByUsername(username: string): Promise<UserRecord | undefined> {
    return this.users.findByUsername(username);
  }

  async list(
    limit: number,
    cursor?: PageCursor,
  ): Promise<{ data: UserView[]; next_cursor: string | null }> {
    const rows = await this.users.list(limit + 1, cursor);
    return toPage(rows, limit, toUserView);
  }

  /** Creates the user with `base_quota` granted as a ledger row, all in one transaction. */
  async create(input: NewUserInput, actor: string): Promise<UserView> {
    const passwordHash = input.password ? await hashPassword(input.password) : null;
    const baseQuota = input.baseQuota ?? 0;
    const id = await this.db.transaction(async (tx) => {
      const user = await this.users.insert(
        {
          username: input.username,
          email: input.email ?? null,
          role: input.role ?? 'user',
          passwordHash,
          subscriptionTier: input.subscriptionTier,
        },
        tx,
      );
      if (!user)
        throw new ApiError(
          409,
          'conflict_error',
          'username_taken',
          'This username is taken',
          'username',
        );
      await this.grants.grantOnce(tx, {
        userId: user.id,
        amount: baseQuota,
        baseQuota,
        idempotencyKey: INITIAL_GRANT_KEY,
        description: 'Initial grant (base_quota)',
      });
      await this.audit.record(
        actor,
        'user.create',
        user.id,
        {
          username: user.username,
          role: user.role,
          base_quota: baseQuota,
          has_password: !!passwordHash,
        },
        tx,
      );
      return user.id;
    }, 'user_create');
    return toUserView((await this.users.findById(id))!);
  }

  /** Checks a login; undefined for an unknown user, a user without password, or a wrong one. */
  async verifyCredentials(username: string, password: string): Promise<UserRecord | undefined> {
    const user = await this.users.findByUsername(username);
    const ok = await verifyPassword(user?.passwordHash, password);
    return ok ? user : undefined;
  }

  /** `create-admin`: creates user `admin` or resets its password (and role). */
  async setAdminPassword(
    username: string,
    password: string,
    actor: string,
  ): Promise<{ created: boolean }> {
    const { user, created } = await this.users.upsertWithPassword(
      username,
      'admin',
      await hashPassword(password),
      null,
    );
    await this.audit.record(actor, created ? 'admin.create' : 'admin.password_reset', user.id, {
      username,
    });
    return { created };
  }
}

export function toUserView(user: UserWithCredits): UserView {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    role: user.role,
    subscription_tier: user.subscriptionTier,
    balance: user.balance,
    base_quota: user.baseQuota,
    created_at: user.createdAt.toISOString(),
  };
}
