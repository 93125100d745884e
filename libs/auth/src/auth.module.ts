import { Global, Module } from '@nestjs/common';
import { AdminAuditController } from './admin-audit.controller';
import { AdminKeysController } from './admin-keys.controller';
import { AdminTokenService } from './admin-token.service';
import { AdminUsersController } from './admin-users.controller';
import { AdminGuard } from './admin.guard';
import { ApiKeyAuthService } from './api-key-auth.service';
import { ApiKeyCache } from './api-key-cache.service';
import { ApiKeyUsage } from './api-key-usage.service';
import { ApiKeyGuard } from './api-key.guard';
import { ApiKeyRepository } from './api-key.repository';
import { ApiKeysService } from './api-keys.service';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';
import { AuthBootstrapService } from './auth-bootstrap.service';
import { AuthController } from './auth.controller';
import { AuthService } from './auth.service';
import { BootstrapKeysService } from './bootstrap-keys.service';
import { CreditGrantRepository } from './credit-grant.repository';
import { CREDENTIALS_OUTPUT, CredentialsOutput, FirstStartService } from './first-start.service';
import { LoginLimiter } from './login-limiter.service';
import { PrincipalAdmission } from './principal-admission';
import { UsersRepository } from './users.repository';
import { UsersService } from './users.service';

const printToStdout: CredentialsOutput = (text) => process.stdout.write(`${text}\n`);

/**
 * API keys for consumers, JWTs for admins. Global so that any module can put ApiKeyGuard or
 * AdminGuard on its routes and record audit rows.
 */
@Global()
@Module({
  controllers: [AuthController, AdminUsersController, AdminKeysController, AdminAuditController],
  providers: [
    { provide: CREDENTIALS_OUTPUT, useValue: printToStdout },
    AdminGuard,
    AdminTokenService,
    ApiKeyAuthService,
    ApiKeyCache,
    ApiKeyGuard,
    ApiKeyRepository,
    ApiKeyUsage,
    ApiKeysService,
    AuditRepository,
    AuditService,
    AuthBootstrapService,
    AuthService,
    BootstrapKeysService,
    CreditGrantRepository,
    FirstStartService,
    LoginLimiter,
    PrincipalAdmission,
    UsersRepository,
    UsersService,
  ],
  exports: [
    AdminGuard,
    AdminTokenService,
    ApiKeyAuthService,
    ApiKeyGuard,
    ApiKeysService,
    AuditService,
    PrincipalAdmission,
    UsersService,
  ],
})
export class AuthModule {}
