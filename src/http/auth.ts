// Bearer JWT authentication with jose, and role checks.
//   jwks mode: tokens of an external issuer, verified against its JWKS URL (keys cached and refreshed by jose),
//              asymmetric algorithms only, issuer and audience required.
//   dev mode:  HS256 tokens signed with a local secret and issued by POST /v1/auth/token. A generated secret
//              only verifies on the instance that made it, so several instances need AUTH_DEV_SECRET.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  type JWTPayload,
  type JWTVerifyGetKey,
  SignJWT,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
} from 'jose';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import type { ClusterKeys } from '../config/cluster-key.ts';
import type { AuthConfig } from '../config/config.ts';
import { ApiError, unavailable } from '../problems/errors.ts';
import { INSTANCE_CALL_HEADER, verifyInstanceCall } from './instance-call.ts';
import type { Principal } from './principal.ts';
import { type Role, ROLES } from './users.ts';
import { LruMap } from '../stores/lru.ts';

export interface IssuedToken {
  token: string;
  expiresInS: number;
}

const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];
const DEV_ALGORITHM = 'HS256';
const REALM = 'Bearer realm="bankstream"';
// RFC 6750 b64token; anything else in the header is not a bearer token at all.
export const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
export const TOKEN_CHARS_MAX = 8192;
const JWKS_TIMEOUT_MS = 5000;
const JWKS_COOLDOWN_MS = 30_000;
const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;
/** Verified tokens remembered (least recently used dropped first). */
const VERIFIED_TOKENS_MAX = 10_000;
/**
 * How long a verified token is answered from memory before its signature is checked again. A JWT carries
 * no revocation, but its key can be: an identity provider that drops a key from its JWKS (rotated out
 * after a leak) stops that key's tokens once the JWKS cache (JWKS_CACHE_MAX_AGE_MS) has been refreshed,
 * and a remembered token must not outlive that by more than this. One signature check a minute per
 * token costs nothing next to one per request.
 */
export const REMEMBERED_FOR_MS = 60_000;

interface Remembered {
  principal: Principal;
  verifiedAtMs: number;
}

export class Authenticator {
  readonly #config: AuthConfig;
  readonly #key: Uint8Array | JWTVerifyGetKey;
  /**
   * Tokens that verified, with their principal: a token verifies the same until it expires (JWTs carry no
   * revocation), so a client sending the same bearer token again skips the signature check, which was the
   * largest cost of a balance read. Keyed by the whole token string, signature included: a token with the
   * same claims and another signature is another key, verified on its own. Bounded (least recently used
   * dropped first); an entry is answered only while the token has not expired and for REMEMBERED_FOR_MS
   * after its signature was checked (`remembered`).
   */
  readonly #verified: LruMap<string, Remembered>;

  constructor(config: AuthConfig, logger: Logger, options: { rememberedMax?: number } = {}) {
    this.#config = config;
    this.#verified = new LruMap(options.rememberedMax ?? VERIFIED_TOKENS_MAX);
    if (config.mode === 'jwks') {
      this.#key = createRemoteJWKSet(new URL(config.jwksUrl!), {
        timeoutDuration: JWKS_TIMEOUT_MS,
        cooldownDuration: JWKS_COOLDOWN_MS,
        cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
      });
      return;
    }
    if (config.devSecret === undefined) {
      logger.warn(
        'AUTH_DEV_SECRET is not set: tokens are signed with a key generated at start and only verify on this instance',
      );
    }
    this.#key = config.devSecret === undefined ? randomBytes(32) : new TextEncoder().encode(config.devSecret);
  }

  /** Dev mode only: this instance issues tokens. */
  get issuesTokens(): boolean {
    return this.#config.mode === 'dev';
  }

  async issue(subject: string, role: Role): Promise<IssuedToken> {
    if (!(this.#key instanceof Uint8Array))
      throw new ApiError('token_issuance_disabled', 'tokens are issued by the identity provider (AUTH_JWKS_URL)');
    const expiresInS = this.#config.tokenTtlS;
    const token = await new SignJWT({ [this.#config.roleClaim]: role })
      .setProtectedHeader({ alg: DEV_ALGORITHM, typ: 'JWT' })
      .setSubject(subject)
      .setIssuer(this.#config.issuer)
      .setAudience(this.#config.audience)
      .setIssuedAt()
      .setExpirationTime(`${expiresInS}s`)
      .setJti(randomUUID())
      .sign(this.#key);
    return { token, expiresInS };
  }

  /**
   * The principal of a token that verified less than REMEMBERED_FOR_MS ago and has not expired since,
   * else undefined (then `verify` it). Synchronous, so a request with a remembered token waits for nothing.
   */
  remembered(token: string): Principal | undefined {
    const cached = this.#verified.get(token);
    if (cached === undefined) return undefined;
    const now = Date.now();
    // Exactly jose's rule: expired once now - tolerance >= exp.
    const expired = now - this.#config.clockToleranceS * 1000 >= cached.principal.expiresAtMs;
    if (!expired && now - cached.verifiedAtMs < REMEMBERED_FOR_MS) return cached.principal;
    this.#verified.delete(token);
    return undefined;
  }

  /** Verifies signature, algorithm, issuer, audience, exp/nbf; throws ApiError 401 (or 503 when the JWKS is unreachable). */
  async verify(token: string): Promise<Principal> {
    const cached = this.remembered(token);
    if (cached !== undefined) return cached;
    const options = {
      issuer: this.#config.issuer,
      audience: this.#config.audience,
      algorithms: this.#config.mode === 'jwks' ? ASYMMETRIC_ALGORITHMS : [DEV_ALGORITHM],
      clockTolerance: this.#config.clockToleranceS,
      requiredClaims: ['exp', 'sub'],
    };
    let payload: JWTPayload;
    try {
      const key = this.#key;
      payload = (
        key instanceof Uint8Array ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options)
      ).payload;
    } catch (error) {
      throw verificationError(error);
    }
    const role = roleOf(payload[this.#config.roleClaim]);
    if (!role)
      throw invalidToken(`the token has no "${this.#config.roleClaim}" claim naming one of ${ROLES.join(', ')}`);
    const principal: Principal = Object.freeze({ subject: payload.sub!, role, expiresAtMs: payload.exp! * 1000 });
    this.#verified.set(token, { principal, verifiedAtMs: Date.now() });
    return principal;
  }
}

/** The most privileged known role among the claim's values (a string or an array of strings). */
function roleOf(claim: unknown): Role | undefined {
  const values = Array.isArray(claim) ? claim : [claim];
  for (const role of [...ROLES].reverse()) if (values.includes(role)) return role;
  return undefined;
}

function invalidToken(detail: string): ApiError {
  return new ApiError('invalid_token', detail, { headers: { 'WWW-Authenticate': `${REALM}, error="invalid_token"` } });
}

/** Token errors are the client's (401, with jose's reason); failing to fetch the issuer's keys is ours (503). */
function verificationError(error: unknown): ApiError {
  if (error instanceof joseErrors.JWKSTimeout)
    return unavailable('auth_unavailable', 'the JWKS endpoint timed out', 5, error);
  if (error instanceof joseErrors.JWKSInvalid)
    return unavailable('auth_unavailable', 'the JWKS endpoint returned no valid key set', 5, error);
  if (error instanceof joseErrors.JWTExpired) return invalidToken('the token has expired');
  if (error instanceof joseErrors.JWTClaimValidationFailed)
    return invalidToken(`claim ${error.claim} is invalid: ${error.reason}`);
  if (error instanceof joseErrors.JOSEError && error.code !== 'ERR_JOSE_GENERIC')
    return invalidToken(`the token is invalid (${error.code})`);
  // ERR_JOSE_GENERIC and fetch failures: the JWKS answered badly or not at all.
  return unavailable('auth_unavailable', 'the JWKS endpoint could not be read', 5, error);
}

/** Where instance-to-instance credentials are accepted (the proxied account read only). */
export interface InstanceCalls {
  keys: ClusterKeys;
  self: string;
  clockToleranceS: number;
}

/**
 * Middleware: requires a valid bearer token and puts the principal in ctx.state.principal. With
 * `instanceCalls`, a request from another instance authenticates with its instance credential instead
 * (ctx.state.instanceCaller names that instance); everywhere else such a credential is refused.
 */
export function authenticate(authenticator: Authenticator, instanceCalls?: InstanceCalls) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const credential = ctx.get(INSTANCE_CALL_HEADER);
    if (credential !== '') {
      if (!instanceCalls) throw invalidToken(`${INSTANCE_CALL_HEADER} is only accepted on GET /v1/accounts/:id`);
      const check = verifyInstanceCall(instanceCalls.keys, credential, {
        self: instanceCalls.self,
        method: ctx.method,
        path: ctx.originalUrl,
        clockToleranceS: instanceCalls.clockToleranceS,
      });
      if (!check.ok) throw invalidToken(`instance credential refused: ${check.reason}`);
      ctx.state['principal'] = check.principal;
      ctx.state['instanceCaller'] = check.caller;
      await next();
      return;
    }
    const header = ctx.get('Authorization');
    if (header === '')
      throw new ApiError('unauthenticated', 'an Authorization: Bearer <token> header is required', {
        headers: { 'WWW-Authenticate': REALM },
      });
    const match = header.length <= TOKEN_CHARS_MAX ? BEARER.exec(header) : null;
    if (!match) throw invalidToken('the Authorization header is not "Bearer <token>"');
    const token = match[1]!;
    ctx.state['principal'] = authenticator.remembered(token) ?? (await authenticator.verify(token));
    await next();
  };
}

/** The calling instance when the request came with an instance credential (a proxied read). */
export function instanceCallerOf(ctx: Context): string | undefined {
  return ctx.state['instanceCaller'] as string | undefined;
}

export function principalOf(ctx: Context): Principal {
  const principal = ctx.state['principal'] as Principal | undefined;
  // Routes that call this are mounted behind authenticate(); reaching here without one is a wiring bug.
  if (!principal) throw new Error('principalOf called on a route without authentication');
  return principal;
}

/** Throws 403 unless the principal has one of the roles. */
export function requireRole(ctx: Context, ...roles: Role[]): Principal {
  const principal = principalOf(ctx);
  if (!roles.includes(principal.role))
    throw new ApiError(
      'forbidden',
      `this operation needs one of the roles ${roles.join(', ')}; the token has ${principal.role}`,
    );
  return principal;
}
