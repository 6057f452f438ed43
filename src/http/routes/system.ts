// System routes: liveness, readiness, Prometheus metrics, the OpenAPI document, and (dev mode) token
// issuance against the users table.
// The management split (issue 15, docs/security.md): on the API port /healthz and /readyz say only
// up/ready; the details (streams status, sink state and its last error, the routing table with instance
// URLs) and /metrics need an admin token. The management listener (MANAGEMENT_PORT, like Spring Boot's
// actuator port) serves them without a token: it is meant for the cluster network only (Prometheus, probes).
import type { Router } from '@koa/router';
import type { Context } from 'koa';
import { authenticate, principalOf } from '../auth.ts';
import { readJsonObject } from '../body.ts';
import type { ApiDeps } from '../context.ts';
import { ApiError, unavailable } from '../../problems/errors.ts';
import { openApiDocument } from '../openapi.ts';
import { burnPasswordCheck, verifyPassword } from '../passwords.ts';
import { findUser } from '../users.ts';
import { BodyReader } from '../validate.ts';
import { sinkNotReadyReasons } from '../../sinks/status.ts';
import { internalRecordsDegradedReasons } from '../../streams/status.ts';

/** The public routes of the API port. */
export function systemRoutes(router: Router, deps: ApiDeps): void {
  const auth = authenticate(deps.authenticator);
  router.get('/healthz', (ctx) => healthz(ctx, deps, false));
  // With an Authorization header the token is checked and an admin gets the details; without, only ready.
  router.get('/readyz', async (ctx) => {
    if (ctx.get('Authorization') === '') return readyz(ctx, deps, false);
    await auth(ctx, async () => readyz(ctx, deps, adminOnly(ctx)));
  });
  router.get('/metrics', auth, (ctx) => {
    adminOnly(ctx, true);
    return metrics(ctx, deps);
  });
  const document = openApiDocument(deps.config);
  router.get('/openapi.json', (ctx) => {
    ctx.body = document;
  });
  router.post('/v1/auth/token', (ctx) => issueToken(ctx, deps));
}

/** The routes of the management listener: everything in detail, no token (network-isolated by deployment). */
export function managementRoutes(router: Router, deps: ApiDeps): void {
  router.get('/healthz', (ctx) => healthz(ctx, deps, true));
  router.get('/readyz', (ctx) => readyz(ctx, deps, true));
  router.get('/metrics', (ctx) => metrics(ctx, deps));
}

/** True for an admin; with `require`, 403 for anyone else. */
function adminOnly(ctx: Context, require = false): boolean {
  const admin = principalOf(ctx).role === 'admin';
  if (!admin && require)
    throw new ApiError('forbidden', 'the management surface needs an admin token (or the management port)');
  return admin;
}

/** Live unless the stream processor has failed for good (a restart is then what helps). */
function healthz(ctx: Context, deps: ApiDeps, details: boolean): void {
  const state = deps.streams.status().state;
  ctx.status = state === 'FAILED' ? 503 : 200;
  ctx.set('Cache-Control', 'no-store');
  const status = state === 'FAILED' ? 'failed' : 'ok';
  ctx.body = details ? { status, instanceId: deps.config.instanceId, streams: state } : { status };
}

/**
 * Ready = the processor is RUNNING, every assigned task is restored and running, no part of the
 * instance (engine, standbys, sink, the API's tails) is waiting for the broker, and the sink (when this
 * instance runs one) has no stopped partition and no unresolved reject: a reject means the read model
 * differs from the ledger. `reasons` says why not (empty when ready); they are details (partition stops, sink rejects),
 * shown only with the rest of the details (admin token or management port).
 */
function readyz(ctx: Context, deps: ApiDeps, details: boolean): void {
  const status = deps.streams.status();
  const reasons: string[] = [];
  if (status.state !== 'RUNNING') reasons.push(`streams: the stream processor is ${status.state}`);
  for (const stop of status.stopped)
    reasons.push(`streams: ${stop.topic}-${stop.partition} stopped (${stop.code}): ${stop.reason}; ${stop.action}`);
  const stoppedPartitions = new Set(status.stopped.map((stop) => stop.partition));
  const waiting = status.assigned.filter((p) => !status.running.includes(p) && !stoppedPartitions.has(p));
  if (waiting.length > 0)
    reasons.push(`streams: ${waiting.length} assigned task(s) not running yet (restoring or starting)`);
  if (deps.sink) reasons.push(...sinkNotReadyReasons(deps.sink.status()));
  const brokerUnavailable = deps.streams.brokerHealth.unavailable();
  if (brokerUnavailable.length > 0)
    reasons.push(
      `broker: unavailable to ${brokerUnavailable.map((outage) => outage.component).join(', ')}; retrying until it answers`,
    );
  const ready = reasons.length === 0;
  ctx.status = ready ? 200 : 503;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = details
    ? {
        ready,
        reasons,
        // Reasons to look at this instance even though it serves (a forged internal record, an upgrade switch left on).
        degraded: internalRecordsDegradedReasons(status.internalRecords),
        instanceId: deps.config.instanceId,
        url: deps.selfUrl(),
        streams: status,
        sink: deps.sink ? deps.sink.status() : null,
        brokerUnavailable,
        routing: deps.directory.instances(),
      }
    : { ready };
}

async function metrics(ctx: Context, deps: ApiDeps): Promise<void> {
  ctx.set('Cache-Control', 'no-store');
  ctx.type = deps.metrics.registry.contentType;
  ctx.body = await deps.metrics.registry.metrics();
}

async function issueToken(ctx: Context, deps: ApiDeps): Promise<void> {
  if (!deps.authenticator.issuesTokens)
    throw new ApiError('token_issuance_disabled', 'tokens are issued by the identity provider (AUTH_JWKS_URL)');
  const body = new BodyReader(await readJsonObject(ctx, deps.config.http.bodyLimitBytes));
  const username = body.id('username')!;
  const password = body.password('password')!;
  body.done();
  let user: Awaited<ReturnType<typeof findUser>>;
  // Same work whether the user exists or not, and one answer for both: no user enumeration. Throttled per
  // username and client address before any password check (login-throttle.ts).
  const valid = await deps.logins.attempt(username, ctx.ip, async () => {
    user = await findUser(deps.readModel.pool, username).catch((error: unknown) => {
      throw unavailable('database_unavailable', 'the users table could not be read', 2, error);
    });
    return user ? verifyPassword(password, user.passwordHash) : (await burnPasswordCheck(password), false);
  });
  if (!user || !valid) throw new ApiError('invalid_credentials', 'unknown user or wrong password');
  const issued = await deps.authenticator.issue(user.id, user.role);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { access_token: issued.token, token_type: 'Bearer', expires_in: issued.expiresInS, role: user.role };
}
