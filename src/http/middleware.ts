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

export function requestIdOf(ctx: Context): string {
  return (ctx.state['requestId'] as string | undefined) ?? '';
}

export function loggerOf(ctx: Context): Logger {
  return ctx.state['log'] as Logger;
}

/** X-Request-Id in (when valid) or generated, echoed in the response and bound to every log line of the request. */
export function requestContext(logger: Logger, metrics: Metrics) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const incoming = ctx.get('X-Request-Id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state['requestId'] = requestId;
    ctx.set('X-Request-Id', requestId);
    const log = logger.child({ reqId: requestId });
    ctx.state['log'] = log;
    const started = performance.now();
    try {
      await next();
    } finally {
      const durationMs = performance.now() - started;
      // The route template, never the raw path: bounded label cardinality.
      const route = typeof ctx['_matchedRoute'] === 'string' ? (ctx['_matchedRoute'] as string) : 'unmatched';
      metrics.httpRequestDuration.observe({ method: ctx.method, route, status: String(ctx.status) }, durationMs / 1000);
      log.info(
        { method: ctx.method, route, path: ctx.path, status: ctx.status, durationMs: Math.round(durationMs * 10) / 10 },
        'request',
      );
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
