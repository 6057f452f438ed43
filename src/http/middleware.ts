// The outer middleware of the API: request ids and access logs with the request duration metric, and the
// ONE error middleware that maps errors to RFC 9457 problem+json. ApiErrors are user-facing and shown as
// they are; framework errors with an exposable 4xx status become the matching code; anything else is
// logged with its stack and answered 500 without internals (the request id ties the answer to the log).
import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import { ApiError, codeForStatus, problemBody } from '../problems/errors.ts';
import type { Metrics } from '../metrics/metrics.ts';

// Accept a caller's id only if it is short and harmless in logs and headers.
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** Where requestContext leaves its logger for loggerOf. */
const BASE_LOGGER = 'baseLog';

export function requestIdOf(ctx: Context): string {
  return (ctx.state['requestId'] as string | undefined) ?? '';
}

/** The request's logger (bound to its request id), made on first use: most requests log nothing. */
export function loggerOf(ctx: Context): Logger {
  let log = ctx.state['log'] as Logger | undefined;
  if (log === undefined) {
    log = (ctx.state[BASE_LOGGER] as Logger).child({ reqId: requestIdOf(ctx) });
    ctx.state['log'] = log;
  }
  return log;
}

/** The caller's X-Request-Id when it is valid, else a new one. */
export function newRequestId(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

export interface RequestRecord {
  method: string;
  /** The route template, never the raw path: bounded label cardinality. */
  route: string;
  path: string;
  status: number;
  durationMs: number;
}

/** The request duration metric and, at level info, the access log line (with the request's id). */
export function observeRequest(logger: Logger, metrics: Metrics, requestId: string, request: RequestRecord): void {
  metrics.httpRequestDuration.observe(
    { method: request.method, route: request.route, status: String(request.status) },
    request.durationMs / 1000,
  );
  if (logger.isLevelEnabled('info'))
    logger
      .child({ reqId: requestId })
      .info({ ...request, durationMs: Math.round(request.durationMs * 10) / 10 }, 'request');
}

/** X-Request-Id in (when valid) or generated, echoed in the response and bound to every log line of the request. */
export function requestContext(logger: Logger, metrics: Metrics) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const requestId = newRequestId(ctx.get('X-Request-Id'));
    ctx.state['requestId'] = requestId;
    ctx.set('X-Request-Id', requestId);
    ctx.state[BASE_LOGGER] = logger;
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = typeof ctx['_matchedRoute'] === 'string' ? (ctx['_matchedRoute'] as string) : 'unmatched';
      observeRequest(logger, metrics, requestId, {
        method: ctx.method,
        route,
        path: ctx.path,
        status: ctx.status,
        durationMs: performance.now() - started,
      });
    }
  };
}

export function errorHandler() {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null)
        throw new ApiError('not_found', `no route for ${ctx.method} ${ctx.path}`);
    } catch (error) {
      writeProblem(ctx, toApiError(error, ctx));
    }
  };
}

function toApiError(error: unknown, ctx: Context): ApiError {
  if (error instanceof ApiError) {
    // 503s while partitions move are routine; other server-side failures keep their cause in the log.
    if (error.status === 503 && error.cause === undefined) loggerOf(ctx).debug({ code: error.code }, error.message);
    else if (error.status >= 500) loggerOf(ctx).warn({ code: error.code, cause: error.cause }, error.message);
    return error;
  }
  const status = (error as { status?: unknown; expose?: unknown }).status;
  if (
    typeof status === 'number' &&
    ((status >= 400 && status < 500 && (error as { expose?: unknown }).expose === true) || status === 501)
  ) {
    const headers = (error as { headers?: Record<string, string> }).headers ?? {};
    return new ApiError(codeForStatus(status), (error as Error).message, { headers });
  }
  loggerOf(ctx).error({ err: error }, 'unhandled error');
  return new ApiError('internal', 'an internal error occurred; quote the requestId when reporting it');
}

export function writeProblem(ctx: Context, error: ApiError): void {
  ctx.status = error.status;
  for (const [name, value] of Object.entries(error.headers)) ctx.set(name, value);
  if (error.retryAfterS !== undefined) ctx.set('Retry-After', String(Math.max(0, Math.ceil(error.retryAfterS))));
  ctx.type = 'application/problem+json';
  ctx.body = problemBody(error, ctx.path, requestIdOf(ctx));
}
