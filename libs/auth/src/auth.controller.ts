import { Body, Controller, Header, HttpCode, Post, Req, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiError } from '@app/observability';
import { LoginThrottleGuard } from '@app/rate-limit';
import { AuthService, TokenResponse } from './auth.service';
import { parseInput } from './validation';

// Extra OAuth2 form fields (grant_type, scope, client_id) are accepted and ignored.
const tokenRequest = z.object({
  username: z.string().min(1).max(100),
  password: z.string().min(1).max(1024),
});

const ACCEPTED_TYPES = ['application/json', 'application/x-www-form-urlencoded'];

@Controller('auth')
export class AuthController {
  constructor(private readonly auth: AuthService) {}

  /**
   * Two limits: LoginThrottleGuard caps every attempt per IP (LOGIN_RATE_LIMIT_PER_MINUTE);
   * LoginLimiter locks out IPs and usernames after repeated failures.
   */
  @Post('token')
  @UseGuards(LoginThrottleGuard)
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async token(@Req() request: FastifyRequest, @Body() body: unknown): Promise<TokenResponse> {
    // Fastify also parses text/plain; a login must be JSON or a form.
    const type = String(request.headers['content-type'] ?? '')
      .split(';')[0]
      .trim()
      .toLowerCase();
    if (!ACCEPTED_TYPES.includes(type))
      throw new ApiError(
        415,
        'invalid_request_error',
        'unsupported_media_type',
        'Send application/json or application/x-www-form-urlencoded',
      );
    const { username, password } = parseInput(tokenRequest, body);
    return this.auth.login(username, password, request.ip);
  }
}
