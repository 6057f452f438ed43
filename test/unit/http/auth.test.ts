import { Router } from '@koa/router';
import { type CryptoKey, type JWK, SignJWT, UnsecuredJWT, exportJWK, generateKeyPair } from 'jose';
import Koa from 'koa';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../src/config/config.ts';
import { Authenticator, REMEMBERED_FOR_MS, authenticate, requireRole } from '../../../src/http/auth.ts';
import { ApiError } from '../../../src/problems/errors.ts';
import { Metrics } from '../../../src/metrics/metrics.ts';
import { errorHandler, requestContext } from '../../../src/http/middleware.ts';
import { type Served, serve } from './serve.ts';

const logger = pino({ level: 'silent' });
const SECRET = 'unit-test-secret-with-more-than-32-characters';
const ISSUER = 'https://idp.example.test/';
const AUDIENCE = 'bankstream-test';

async function refused(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe('Authenticator in dev mode', () => {
  const auth = new Authenticator(loadConfig({ AUTH_DEV_SECRET: SECRET }).auth, logger);
  const key = new TextEncoder().encode(SECRET);
  const sign = (claims: Record<string, unknown>, build: (jwt: SignJWT) => SignJWT = (jwt) => jwt) =>
    build(
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('u1')
        .setIssuer('bankstream')
        .setAudience('bankstream-api')
        .setIssuedAt()
        .setExpirationTime('5m'),
    ).sign(key);

  it('should verify the subject and role when the token was issued by this authenticator', async () => {
    const { token, expiresInS } = await auth.issue('alice', 'customer');

    const principal = await auth.verify(token);
    expect(principal).toMatchObject({ subject: 'alice', role: 'customer' });
    expect(principal.expiresAtMs).toBeGreaterThan(Date.now() + 3_500_000);
    expect(expiresInS).toBe(3600);
  });

  it('should refuse with invalid_token when the token has expired', async () => {
    const token = await sign({ role: 'admin' }, (jwt) => jwt.setExpirationTime(Math.floor(Date.now() / 1000) - 60));

    const error = await refused(auth.verify(token));

    expect(error.code).toBe('invalid_token');
    expect(error.status).toBe(401);
    expect(error.message).toContain('expired');
  });

  it('should answer a token it verified before from memory, and refuse it once it has expired', async () => {
    const strict = new Authenticator(loadConfig({ AUTH_DEV_SECRET: SECRET, AUTH_CLOCK_TOLERANCE_S: '0' }).auth, logger);
    const token = await sign({ role: 'teller' }, (jwt) => jwt.setExpirationTime(Math.floor(Date.now() / 1000) + 2));
    const first = await strict.verify(token);
    expect(await strict.verify(token)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, first.expiresAtMs - Date.now()) + 50));
    const error = await refused(strict.verify(token));
    expect(error.code).toBe('invalid_token');
    expect(error.message).toContain('expired');
  });

  it('should refuse a token with a wrong signature even when a token with the same claims is remembered', async () => {
    const fresh = new Authenticator(loadConfig({ AUTH_DEV_SECRET: SECRET }).auth, logger);
    const exp = Math.floor(Date.now() / 1000) + 300;
    const build = () =>
      new SignJWT({ role: 'admin' })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('u1')
        .setIssuer('bankstream')
        .setAudience('bankstream-api')
        .setIssuedAt(exp - 300)
        .setExpirationTime(exp);
    const valid = await build().sign(key);
    const forged = await build().sign(new TextEncoder().encode('another-secret-with-more-than-32-characters!'));
    // Same header and claims, so the same first two parts: only the signature differs.
    expect(forged.split('.').slice(0, 2)).toEqual(valid.split('.').slice(0, 2));
    await fresh.verify(valid);
    expect(fresh.remembered(valid)).toMatchObject({ subject: 'u1', role: 'admin' });

    expect(fresh.remembered(forged)).toBeUndefined();
    expect((await refused(fresh.verify(forged))).code).toBe('invalid_token');
    const flipped = `${valid.slice(0, -2)}${valid.at(-2) === 'A' ? 'B' : 'A'}${valid.at(-1)}`;
    expect((await refused(fresh.verify(flipped))).code).toBe('invalid_token');
    expect(fresh.remembered(valid)).toBeDefined();
  });

  it('should remember at most its bound of tokens, dropping the least recently used first', async () => {
    const small = new Authenticator(loadConfig({ AUTH_DEV_SECRET: SECRET }).auth, logger, { rememberedMax: 2 });
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((subject) => small.issue(subject, 'customer')));
    await small.verify(a!.token);
    await small.verify(b!.token);
    expect(small.remembered(a!.token)?.subject).toBe('a'); // a is now the most recently used
    await small.verify(c!.token);

    expect(small.remembered(b!.token)).toBeUndefined();
    expect(small.remembered(a!.token)?.subject).toBe('a');
    expect(small.remembered(c!.token)?.subject).toBe('c');
    // A dropped token is verified again (and still valid), not refused.
    expect((await small.verify(b!.token)).subject).toBe('b');
  });

  it('should not answer a remembered token once it has expired, and verify refuses it', async () => {
    const strict = new Authenticator(loadConfig({ AUTH_DEV_SECRET: SECRET, AUTH_CLOCK_TOLERANCE_S: '0' }).auth, logger);
    const token = await sign({ role: 'teller' }, (jwt) => jwt.setExpirationTime(Math.floor(Date.now() / 1000) + 1));
    const principal = await strict.verify(token);
    expect(strict.remembered(token)).toBe(principal);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, principal.expiresAtMs - Date.now()) + 20));

    expect(strict.remembered(token)).toBeUndefined();
    expect((await refused(strict.verify(token))).message).toContain('expired');
  });

  it('should refuse when the token is not yet valid', async () => {
    const token = await sign({ role: 'admin' }, (jwt) => jwt.setNotBefore(Math.floor(Date.now() / 1000) + 600));

    expect((await refused(auth.verify(token))).code).toBe('invalid_token');
  });

  it('should refuse when the issuer or the audience differs', async () => {
    const wrongIssuer = await sign({ role: 'admin' }, (jwt) => jwt.setIssuer('someone-else'));
    const wrongAudience = await sign({ role: 'admin' }, (jwt) => jwt.setAudience('another-api'));

    expect((await refused(auth.verify(wrongIssuer))).message).toContain('iss');
    expect((await refused(auth.verify(wrongAudience))).message).toContain('aud');
  });

  it('should refuse when the signature was made with another key', async () => {
    const forged = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u1')
      .setIssuer('bankstream')
      .setAudience('bankstream-api')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('another-secret-with-more-than-32-characters!'));

    expect((await refused(auth.verify(forged))).code).toBe('invalid_token');
  });

  it('should refuse an unsecured token when its alg is none', async () => {
    const token = new UnsecuredJWT({ role: 'admin' })
      .setSubject('u1')
      .setIssuer('bankstream')
      .setAudience('bankstream-api')
      .setExpirationTime('5m')
      .encode();

    expect((await refused(auth.verify(token))).code).toBe('invalid_token');
  });

  it('should refuse when the role claim is missing or unknown', async () => {
    expect((await refused(auth.verify(await sign({})))).message).toContain('role');
    expect((await refused(auth.verify(await sign({ role: 'root' })))).code).toBe('invalid_token');
  });

  it('should refuse when exp is missing', async () => {
    const token = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('u1')
      .setIssuer('bankstream')
      .setAudience('bankstream-api')
      .sign(key);

    expect((await refused(auth.verify(token))).code).toBe('invalid_token');
  });
});

describe('Authenticator in jwks mode', () => {
  let jwks: Served;
  let privateKey: CryptoKey;
  let otherKey: CryptoKey;
  let auth: Authenticator;
  const sign = (key: CryptoKey, claims: Record<string, unknown> = { role: 'teller' }, kid = 'k1') =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid })
      .setSubject('t1')
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    privateKey = pair.privateKey;
    otherKey = (await generateKeyPair('ES256')).privateKey;
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    auth = new Authenticator(
      loadConfig({ AUTH_JWKS_URL: `${jwks.url}/.well-known/jwks.json`, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE })
        .auth,
      logger,
    );
  });

  afterAll(async () => {
    await jwks.close();
  });

  it('should verify a token when it is signed by a key of the JWKS', async () => {
    expect(await auth.verify(await sign(privateKey))).toMatchObject({ subject: 't1', role: 'teller' });
  });

  it('should refuse when the token is signed by a key outside the JWKS', async () => {
    expect((await refused(auth.verify(await sign(otherKey)))).code).toBe('invalid_token');
    expect((await refused(auth.verify(await sign(otherKey, { role: 'teller' }, 'unknown-kid')))).code).toBe(
      'invalid_token',
    );
  });

  it('should refuse an HS256 token when tokens come from a JWKS', async () => {
    const token = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setSubject('t1')
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET));

    expect((await refused(auth.verify(token))).code).toBe('invalid_token');
  });

  it('should stop a remembered token once its key has left the JWKS, not only at its expiry', async () => {
    // A JWKS whose keys this test changes: the provider drops k2 (rotated out after a leak).
    const pair = await generateKeyPair('ES256', { extractable: true });
    let keys: JWK[] = [{ ...(await exportJWK(pair.publicKey)), kid: 'k2', alg: 'ES256', use: 'sig' }];
    const rotating = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
    });
    const now = vi.spyOn(Date, 'now');
    try {
      const fresh = new Authenticator(
        loadConfig({
          AUTH_JWKS_URL: `${rotating.url}/.well-known/jwks.json`,
          AUTH_ISSUER: ISSUER,
          AUTH_AUDIENCE: AUDIENCE,
        }).auth,
        logger,
      );
      const token = await new SignJWT({ role: 'teller' })
        .setProtectedHeader({ alg: 'ES256', kid: 'k2' })
        .setSubject('t2')
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('2h')
        .sign(pair.privateKey);
      const principal = await fresh.verify(token);
      keys = [];
      const start = Date.now();
      now.mockReturnValue(start + REMEMBERED_FOR_MS - 1);
      expect(fresh.remembered(token)).toBe(principal);
      // Past the JWKS cache's age (10 min) the set is fetched again and k2 is gone; the token expires in 2 h.
      now.mockReturnValue(start + 11 * 60_000);
      expect(fresh.remembered(token)).toBeUndefined();
      expect((await refused(fresh.verify(token))).code).toBe('invalid_token');
    } finally {
      now.mockRestore();
      await rotating.close();
    }
  });

  it('should refuse to issue tokens when an identity provider issues them', async () => {
    expect(auth.issuesTokens).toBe(false);
    expect((await refused(auth.issue('x', 'admin'))).code).toBe('token_issuance_disabled');
  });

  it('should answer 503 auth_unavailable when the JWKS endpoint cannot be reached', async () => {
    const down = new Authenticator(
      loadConfig({ AUTH_JWKS_URL: 'http://127.0.0.1:9/jwks.json', AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE }).auth,
      logger,
    );

    const error = await refused(down.verify(await sign(privateKey)));

    expect(error.code).toBe('auth_unavailable');
    expect(error.status).toBe(503);
  });
});

describe('authenticate middleware', () => {
  let app: Served;
  const auth = new Authenticator(loadConfig({ AUTH_DEV_SECRET: SECRET }).auth, logger);

  beforeAll(async () => {
    const koa = new Koa();
    const router = new Router();
    router.get('/private', authenticate(auth), (ctx) => {
      ctx.body = requireRole(ctx, 'teller', 'admin');
    });
    koa.use(requestContext(logger, new Metrics({ app: 'a', instance: 'i' }, { processMetrics: false })));
    koa.use(errorHandler());
    koa.use(router.routes());
    app = await serve(koa.callback());
  });

  afterAll(async () => {
    await app.close();
  });

  it('should answer 401 problem+json with a Bearer challenge when no token is sent', async () => {
    const response = await fetch(`${app.url}/private`);
    const body = (await response.json()) as Record<string, unknown>;

    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="bankstream"');
    expect(body).toMatchObject({
      type: 'https://bankstream.dev/problems/unauthenticated',
      status: 401,
      code: 'unauthenticated',
      instance: '/private',
    });
    expect(body['requestId']).toBe(response.headers.get('x-request-id'));
  });

  it('should answer 401 invalid_token when the header is not a bearer token', async () => {
    const response = await fetch(`${app.url}/private`, { headers: { Authorization: 'Basic dXNlcjpwYXNz' } });

    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('should answer 403 when the role is not allowed and 200 when it is', async () => {
    const customer = (await auth.issue('c1', 'customer')).token;
    const teller = (await auth.issue('t1', 'teller')).token;

    const denied = await fetch(`${app.url}/private`, { headers: { Authorization: `Bearer ${customer}` } });
    const allowed = await fetch(`${app.url}/private`, {
      headers: { Authorization: `Bearer ${teller}`, 'X-Request-Id': 'req-42' },
    });

    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { code: string }).code).toBe('forbidden');
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('x-request-id')).toBe('req-42');
    expect(await allowed.json()).toMatchObject({ subject: 't1', role: 'teller' });
  });
});
