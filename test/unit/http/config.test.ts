import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/config.ts';

function variableOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.variable;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('HTTP and auth configuration', () => {
  it('should use dev mode with bounded defaults when nothing is set', () => {
    const config = loadConfig({});

    expect(config.auth).toMatchObject({
      mode: 'dev',
      issuer: 'bankstream',
      audience: 'bankstream-api',
      devSecret: undefined,
      tokenTtlS: 3600,
      roleClaim: 'role',
    });
    expect(config.http).toMatchObject({ bodyLimitBytes: 16384, waitMaxMs: 30000, proxyTimeoutMs: 3000 });
  });

  it('should use jwks mode when AUTH_JWKS_URL is set with issuer and audience', () => {
    const config = loadConfig({
      AUTH_JWKS_URL: 'https://idp.example/jwks',
      AUTH_ISSUER: 'https://idp.example/',
      AUTH_AUDIENCE: 'api',
    });

    expect(config.auth.mode).toBe('jwks');
  });

  it('should name the variable when an auth or http setting is invalid', () => {
    expect(variableOf({ AUTH_JWKS_URL: 'https://idp.example/jwks' })).toBe('AUTH_ISSUER');
    expect(variableOf({ AUTH_JWKS_URL: 'https://idp.example/jwks', AUTH_ISSUER: 'x' })).toBe('AUTH_AUDIENCE');
    expect(variableOf({ AUTH_JWKS_URL: 'ftp://idp.example/jwks', AUTH_ISSUER: 'x', AUTH_AUDIENCE: 'y' })).toBe(
      'AUTH_JWKS_URL',
    );
    expect(variableOf({ AUTH_DEV_SECRET: 'short' })).toBe('AUTH_DEV_SECRET');
    expect(
      variableOf({
        AUTH_DEV_SECRET: 'x'.repeat(40),
        AUTH_JWKS_URL: 'https://idp/jwks',
        AUTH_ISSUER: 'x',
        AUTH_AUDIENCE: 'y',
      }),
    ).toBe('AUTH_DEV_SECRET');
    expect(variableOf({ HTTP_WAIT_MAX_MS: '999999' })).toBe('HTTP_WAIT_MAX_MS');
    expect(variableOf({ HTTP_BODY_LIMIT_BYTES: '10' })).toBe('HTTP_BODY_LIMIT_BYTES');
    expect(variableOf({ AUTH_TOKEN_TTL_S: 'soon' })).toBe('AUTH_TOKEN_TTL_S');
  });
});
