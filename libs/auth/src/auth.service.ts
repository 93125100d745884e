import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { ApiError, LOGGER } from '@app/observability';
import { AdminTokenService } from './admin-token.service';
import { countAuthFailure } from './auth.metrics';
import { LoginLimiter } from './login-limiter.service';
import { UserRecord } from './user.types';
import { UsersService } from './users.service';

export interface TokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
}

/** POST /auth/token: username and password in, a short-lived HS256 JWT out. */
@Injectable()
export class AuthService {
  constructor(
    private readonly users: UsersService,
    private readonly tokens: AdminTokenService,
    private readonly limiter: LoginLimiter,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async login(username: string, password: string, ip: string): Promise<TokenResponse> {
    await this.limiter.begin(ip, username);
    let user: UserRecord | undefined;
    try {
      user = await this.users.verifyCredentials(username, password);
    } catch (err) {
      // No verdict (the database is away): the attempt is not a failed login.
      await this.limiter.release(ip, username).catch(() => undefined);
      throw err;
    }
    if (!user) {
      countAuthFailure('login_failed');
      this.logger.warn({ username, ip }, 'login failed');
      throw ApiError.unauthorized('Incorrect username or password.', 'invalid_credentials');
    }
    await this.limiter.recordSuccess(ip, username);
    this.logger.info({ username, ip }, 'login succeeded');
    return {
      access_token: this.tokens.sign({ sub: user.id, username: user.username, role: user.role }),
      token_type: 'bearer',
      expires_in: this.tokens.expiresInSeconds,
    };
  }
}
