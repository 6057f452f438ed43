// Unauthenticated routes: liveness, readiness, Prometheus metrics, the OpenAPI document, and (dev mode)
// token issuance against the users table.
import { type Router } from '@koa/router';
import { type Context } from 'koa';
import { readJsonObject } from '../body.ts';
import { type ApiDeps } from '../context.ts';
import { ApiError, unavailable } from '../errors.ts';
import { openApiDocument } from '../openapi.ts';
import { burnPasswordCheck, verifyPassword } from '../passwords.ts';
import { findUser } from '../users.ts';
import { BodyReader } from '../validate.ts';

// scrypt runs on libuv's thread pool, which LevelDB (the state stores) uses too: a login flood must not
// starve the stores, so password checks are bounded and the excess is told to retry.
const PASSWORD_CHECKS_MAX = 2;
let passwordChecks = 0;

export function systemRoutes(router: Router, deps: ApiDeps): void {
  router.get('/healthz', (ctx) => healthz(ctx, deps));
  router.get('/readyz', (ctx) => readyz(ctx, deps));
  router.get('/metrics', (ctx) => metrics(ctx, deps));
  const document = openApiDocument(deps.config);
  router.get('/openapi.json', (ctx) => {
    ctx.body = document;
  });
  router.post('/v1/auth/token', (ctx) => issueToken(ctx, deps));
}

/** Live unless the stream processor has failed for good (a restart is then what helps). */
function healthz(ctx: Context, deps: ApiDeps): void {
  const state = deps.streams.status().state;
  ctx.status = state === 'FAILED' ? 503 : 200;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { status: state === 'FAILED' ? 'failed' : 'ok', instanceId: deps.config.instanceId, streams: state };
}

/**
 * Ready = the processor is RUNNING, every assigned task is restored and running, and no part of the
 * instance (engine, standbys, sink, the API's tails) is waiting for the broker.
 */
function readyz(ctx: Context, deps: ApiDeps): void {
  const status = deps.streams.status();
  const brokerUnavailable = deps.streams.brokerHealth.unavailable();
  const ready = status.state === 'RUNNING' && status.assigned.every((p) => status.running.includes(p)) && brokerUnavailable.length === 0;
  ctx.status = ready ? 200 : 503;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = {
    ready,
    instanceId: deps.config.instanceId,
    url: deps.selfUrl(),
    streams: status,
    sink: deps.sink ? deps.sink.status() : null,
    brokerUnavailable,
    routing: deps.directory.instances(),
  };
}

async function metrics(ctx: Context, deps: ApiDeps): Promise<void> {
  ctx.set('Cache-Control', 'no-store');
  ctx.type = deps.metrics.registry.contentType;
  ctx.body = await deps.metrics.registry.metrics();
}

async function issueToken(ctx: Context, deps: ApiDeps): Promise<void> {
  if (!deps.authenticator.issuesTokens) throw new ApiError('token_issuance_disabled', 'tokens are issued by the identity provider (AUTH_JWKS_URL)');
  const body = new BodyReader(await readJsonObject(ctx, deps.config.http.bodyLimitBytes));
  const username = body.id('username');
  const password = body.password('password');
  body.done();
  if (passwordChecks >= PASSWORD_CHECKS_MAX) throw new ApiError('too_many_requests', 'too many logins at once', { retryAfterS: 1 });
  passwordChecks++;
  let user;
  let valid: boolean;
  try {
    user = await findUser(deps.readModel.pool, username!).catch((error: unknown) => {
      throw unavailable('database_unavailable', 'the users table could not be read', 2, error);
    });
    // Same work whether the user exists or not, and one answer for both: no user enumeration.
    valid = user ? await verifyPassword(password!, user.passwordHash) : (await burnPasswordCheck(password!), false);
  } finally {
    passwordChecks--;
  }
  if (!user || !valid) throw new ApiError('invalid_credentials', 'unknown user or wrong password');
  const issued = await deps.authenticator.issue(user.id, user.role);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { access_token: issued.token, token_type: 'Bearer', expires_in: issued.expiresInS, role: user.role };
}
