// GET /v1/accounts/:id served before Koa when nothing about the request is unusual, because it is the
// API's hottest request: Koa's context objects, its middleware chain and the router cost more than the
// read itself (bench/README.md, "Issue 21: API reads"). The fast path answers only the plain success:
//   GET /v1/accounts/<id> with no query string, no trailing slash and no percent-escape in the id;
//   a bearer token this instance verified before and that has not expired (Authenticator.remembered);
//   no instance credential; the account's partition running here (a local committed read, as `read`).
// Everything else, and every failure of the read (404, 503 while restoring, a closed store) or a customer
// reading someone else's account, goes to the Koa app unchanged, which answers it as it always did
// (the read is then made again there): the fast path never answers an error. Its 200 has the headers,
// body, request-duration metric and access log of the Koa route (test/integration/http/api.test.ts
// compares both).
import type http from 'node:http';
import type { Logger } from 'pino';
import { INSTANCE_HEADER, type LocalRead } from './accounts.ts';
import { INSTANCE_CALL_HEADER } from './instance-call.ts';
import { BEARER, TOKEN_CHARS_MAX } from './auth.ts';
import type { ApiDeps } from './context.ts';
import { newRequestId, observeRequest } from './middleware.ts';
import { idParam } from './validate.ts';

const ROUTE = '/v1/accounts/:id';
// No "%" (the Koa route decodes escapes; such ids take that path), "/", "?" or "#"; idParam checks the rest.
const PATH = /^\/v1\/accounts\/([^/?#%]{1,256})$/;
const INSTANCE_CALL = INSTANCE_CALL_HEADER.toLowerCase();

export function withAccountReadFastPath(deps: ApiDeps, app: http.RequestListener): http.RequestListener {
  const { authenticator, queries, metrics } = deps;
  const logger: Logger = deps.logger;
  return (req, res) => {
    const started = performance.now();
    if (req.method !== 'GET' || req.headers[INSTANCE_CALL] !== undefined) return app(req, res);
    const match = PATH.exec(req.url ?? '');
    const authorization = req.headers.authorization;
    if (!match || authorization === undefined || authorization.length > TOKEN_CHARS_MAX) return app(req, res);
    const bearer = BEARER.exec(authorization);
    const principal = bearer ? authenticator.remembered(bearer[1]!) : undefined;
    if (!principal) return app(req, res);
    let read: Promise<LocalRead> | undefined;
    try {
      read = queries.readHere(idParam('id', match[1]));
    } catch {
      // An id the route refuses (400), or a read that failed before it began: the Koa route answers it.
      return app(req, res);
    }
    if (!read) return app(req, res);
    read
      .then(
        ({ view, body }) => {
          // Someone else's account: the Koa route answers the 403.
          if (principal.role === 'customer' && view.ownerId !== principal.subject) return app(req, res);
          const requestId = newRequestId(req.headers['x-request-id']);
          res.writeHead(200, [
            'X-Request-Id',
            requestId,
            INSTANCE_HEADER,
            view.servedBy.instanceId,
            'Cache-Control',
            'no-store',
            'Content-Type',
            'application/json; charset=utf-8',
            'Content-Length',
            String(Buffer.byteLength(body)),
          ]);
          res.end(body);
          observeRequest(logger, metrics, requestId, {
            method: 'GET',
            route: ROUTE,
            path: req.url!,
            status: 200,
            durationMs: performance.now() - started,
          });
        },
        () => app(req, res),
      )
      .catch((error: unknown) => {
        // Nothing above should throw; if it does, never leave the request unanswered or the promise unhandled.
        logger.error({ err: error }, 'the fast path of GET /v1/accounts/:id failed');
        if (!res.headersSent) app(req, res);
        else res.destroy();
      });
  };
}
