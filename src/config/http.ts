// Settings of the HTTP API (src/http): its bounds, JWT authentication and the management listener.
import { ConfigError, type Env, int, str, url } from './settings.ts';

/** Bounds of the HTTP API (src/http). */
export interface HttpConfig {
  /** Largest accepted request body; larger ones get 413. */
  bodyLimitBytes: number;
  /** Upper bound of `?wait=<ms>` on command routes. */
  waitMaxMs: number;
  /** Commands waiting for their outcome at once (each holds a request open). */
  waitersMax: number;
  /** Timeout of a query proxied to the instance that owns the account. */
  proxyTimeoutMs: number;
  /** Events buffered per Server-Sent Events connection before a slow client is disconnected. */
  sseBufferMax: number;
  sseHeartbeatMs: number;
  sseConnectionsMax: number;
  /** Per principal (token subject): open event streams, waiting requests, commands per second (a 1 s window). */
  sseStreamsPerPrincipalMax: number;
  waitersPerPrincipalMax: number;
  commandsPerPrincipalPerS: number;
  /** Login throttling: failures of one username from one client address before the backoff starts, and its bound. */
  loginFailuresFree: number;
  loginBackoffMaxS: number;
  /** Failed logins of one client address (any username) per hour, and of one username (any address) per hour. */
  loginFailuresPerClientPerHour: number;
  loginFailuresPerUserPerHour: number;
}

/**
 * JWT bearer authentication. `jwks` mode verifies tokens of an external issuer against its JWKS URL;
 * `dev` mode signs and verifies HS256 tokens with a local secret and issues them at POST /v1/auth/token.
 */
export interface AuthConfig {
  mode: 'jwks' | 'dev';
  jwksUrl: string | undefined;
  issuer: string;
  audience: string;
  /** dev mode: the HS256 secret; undefined = generated at start (tokens then only work on this instance). */
  devSecret: string | undefined;
  tokenTtlS: number;
  clockToleranceS: number;
  /** The claim carrying the role ("customer", "teller" or "admin"; a string or an array of strings). */
  roleClaim: string;
}

/** The management listener (/healthz, /readyz with details, /metrics, no token). */
export interface ManagementConfig {
  host: string;
  port: number;
}

export function httpConfig(env: Env): HttpConfig {
  return {
    bodyLimitBytes: int(env, 'HTTP_BODY_LIMIT_BYTES', 16 * 1024, 1024, 1024 * 1024),
    waitMaxMs: int(env, 'HTTP_WAIT_MAX_MS', 30_000, 0, 120_000),
    waitersMax: int(env, 'HTTP_WAITERS_MAX', 10_000, 1, 1_000_000),
    proxyTimeoutMs: int(env, 'HTTP_PROXY_TIMEOUT_MS', 3000, 100, 60_000),
    sseBufferMax: int(env, 'HTTP_SSE_BUFFER_MAX', 256, 1, 100_000),
    sseHeartbeatMs: int(env, 'HTTP_SSE_HEARTBEAT_MS', 15_000, 100, 300_000),
    sseConnectionsMax: int(env, 'HTTP_SSE_CONNECTIONS_MAX', 1000, 1, 100_000),
    sseStreamsPerPrincipalMax: int(env, 'HTTP_SSE_STREAMS_PER_PRINCIPAL_MAX', 10, 1, 100_000),
    waitersPerPrincipalMax: int(env, 'HTTP_WAITERS_PER_PRINCIPAL_MAX', 100, 1, 1_000_000),
    commandsPerPrincipalPerS: int(env, 'HTTP_COMMANDS_PER_PRINCIPAL_PER_S', 200, 1, 1_000_000),
    loginFailuresFree: int(env, 'LOGIN_FAILURES_FREE', 5, 1, 1000),
    loginBackoffMaxS: int(env, 'LOGIN_BACKOFF_MAX_S', 900, 1, 86_400),
    loginFailuresPerClientPerHour: int(env, 'LOGIN_FAILURES_PER_CLIENT_PER_HOUR', 100, 1, 1_000_000),
    loginFailuresPerUserPerHour: int(env, 'LOGIN_FAILURES_PER_USER_PER_HOUR', 30, 1, 1_000_000),
  };
}

/** MANAGEMENT_PORT (and MANAGEMENT_HOST, default HTTP_HOST); unset = no management listener. */
export function managementConfig(env: Env, httpHost: string, httpPort: number): ManagementConfig | undefined {
  if (!env['MANAGEMENT_PORT']) {
    if (env['MANAGEMENT_HOST']) throw new ConfigError('MANAGEMENT_HOST', 'is set but MANAGEMENT_PORT is not');
    return undefined;
  }
  const port = int(env, 'MANAGEMENT_PORT', 0, 0, 65535);
  if (port !== 0 && port === httpPort)
    throw new ConfigError(
      'MANAGEMENT_PORT',
      `must differ from HTTP_PORT (${httpPort}): the management surface is a separate listener`,
    );
  return { host: str(env, 'MANAGEMENT_HOST', httpHost), port };
}

// A secret shorter than the HS256 output (32 bytes) weakens the MAC (RFC 7518 section 3.2).
const DEV_SECRET_CHARS_MIN = 32;

export function authConfig(env: Env): AuthConfig {
  const jwksUrl = env['AUTH_JWKS_URL'] ? url(env, 'AUTH_JWKS_URL', '', ['https:', 'http:']) : undefined;
  const devSecret = env['AUTH_DEV_SECRET'] || undefined;
  if (jwksUrl && devSecret)
    throw new ConfigError(
      'AUTH_DEV_SECRET',
      'must not be set together with AUTH_JWKS_URL (dev tokens would be accepted in production)',
    );
  if (devSecret !== undefined && devSecret.length < DEV_SECRET_CHARS_MIN) {
    throw new ConfigError(
      'AUTH_DEV_SECRET',
      `expected at least ${DEV_SECRET_CHARS_MIN} characters, got ${devSecret.length}`,
    );
  }
  // With an external issuer both must be named: a token minted for another audience must not pass.
  for (const name of ['AUTH_ISSUER', 'AUTH_AUDIENCE']) {
    if (jwksUrl && !env[name]) throw new ConfigError(name, 'is required when AUTH_JWKS_URL is set');
  }
  return {
    mode: jwksUrl ? 'jwks' : 'dev',
    jwksUrl,
    issuer: str(env, 'AUTH_ISSUER', 'bankstream', /^\S{1,500}$/, 'a non-empty string without spaces'),
    audience: str(env, 'AUTH_AUDIENCE', 'bankstream-api', /^\S{1,500}$/, 'a non-empty string without spaces'),
    devSecret,
    tokenTtlS: int(env, 'AUTH_TOKEN_TTL_S', 3600, 60, 7 * 24 * 3600),
    clockToleranceS: int(env, 'AUTH_CLOCK_TOLERANCE_S', 5, 0, 300),
    roleClaim: str(env, 'AUTH_ROLE_CLAIM', 'role', /^[A-Za-z0-9_:/.-]{1,200}$/, 'a JWT claim name'),
  };
}
