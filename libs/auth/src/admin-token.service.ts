import { Inject, Injectable } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { Authenticator } from 'passport';
import { ExtractJwt, Strategy as JwtStrategy } from 'passport-jwt';
import { APP_CONFIG, AppConfig } from '@app/config';
import { isUuid } from './uuid';

export const JWT_ISSUER = 'switchyard';
export const JWT_AUDIENCE = 'switchyard-admin';

export interface TokenClaims {
  sub: string;
  username: string;
  role: 'admin' | 'user';
}

export type TokenCheck =
  { ok: true; claims: TokenClaims } | { ok: false; reason: 'missing' | 'invalid' };

/**
 * Issues and verifies admin JWTs. HS256 is pinned both ways: a token with any other `alg`
 * (including `none`) fails verification. During a secret rotation JWT_SECRET_PREVIOUS still
 * verifies; new tokens are always signed with JWT_SECRET.
 *
 * Verification runs through passport-jwt on a private passport instance: the global passport
 * singleton would let two app instances in one process (tests, replicas) overwrite each
 * other's strategies and secrets.
 */
@Injectable()
export class AdminTokenService {
  private readonly signer: JwtService;
  private readonly passport = new Authenticator();
  private readonly strategies: string[] = [];

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.signer = new JwtService({
      secret: config.auth.jwtSecret,
      signOptions: {
        algorithm: 'HS256',
        expiresIn: config.auth.jwtExpiresInSeconds,
        issuer: JWT_ISSUER,
        audience: JWT_AUDIENCE,
      },
    });
    const secrets = [config.auth.jwtSecret, config.auth.jwtSecretPrevious].filter(
      (s): s is string => typeof s === 'string' && s.length > 0,
    );
    secrets.forEach((secret, i) => {
      const name = `jwt-${i}`;
      this.strategies.push(name);
      this.passport.use(
        name,
        new JwtStrategy(
          {
            jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
            secretOrKey: secret,
            algorithms: ['HS256'],
            issuer: JWT_ISSUER,
            audience: JWT_AUDIENCE,
          },
          (payload: unknown, done: (err: unknown, user?: unknown) => void) =>
            done(null, validClaims(payload) ?? false),
        ),
      );
    });
  }

  get expiresInSeconds(): number {
    return this.config.auth.jwtExpiresInSeconds;
  }

  sign(claims: TokenClaims): string {
    return this.signer.sign({ ...claims });
  }

  /** Verifies the bearer token in `headers`; never throws. */
  verify(headers: Record<string, string | string[] | undefined>): Promise<TokenCheck> {
    const authorization = headers['authorization'];
    if (typeof authorization !== 'string' || authorization.trim() === '')
      return Promise.resolve({ ok: false, reason: 'missing' });
    // passport decorates the request it is given; hand it a bare object, not Fastify's request.
    const request = { headers: { authorization } };
    return new Promise((resolve) => {
      const middleware = this.passport.authenticate(
        this.strategies,
        { session: false },
        (err: unknown, user: TokenClaims | false) =>
          resolve(err || !user ? { ok: false, reason: 'invalid' } : { ok: true, claims: user }),
      );
      middleware(request, {}, () => resolve({ ok: false, reason: 'invalid' }));
    });
  }
}

function validClaims(payload: unknown): TokenClaims | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const p = payload as Record<string, unknown>;
  // jsonwebtoken checks `exp` only when present: a token without one would never expire.
  if (typeof p.exp !== 'number') return undefined;
  if (!isUuid(p.sub) || typeof p.username !== 'string') return undefined;
  if (p.role !== 'admin' && p.role !== 'user') return undefined;
  return { sub: p.sub, username: p.username, role: p.role };
}
