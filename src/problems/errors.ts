// Errors of the API: every error a client may see is an ApiError with a stable string `code`, raised by the routes
// and by the rooms they use (the command sender, the outcome tracker); the error middleware (http/middleware.ts)
// turns it into RFC 9457 problem+json with `type` = PROBLEM_TYPE_BASE + code.
// Anything that is not an ApiError is a bug or an operating failure: logged, answered 500 without details.

/** Problem types are `<base><code>`; stable: clients may switch on them. */
export const PROBLEM_TYPE_BASE = 'https://bankstream.dev/problems/';

/** Every code the API answers with, its HTTP status and a short, stable title. */
export const PROBLEM_CODES = {
  malformed_json: { status: 400, title: 'Request body is not valid JSON' },
  invalid_parameter: { status: 400, title: 'Invalid path, query or header parameter' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  invalid_token: { status: 401, title: 'Invalid or expired token' },
  invalid_credentials: { status: 401, title: 'Invalid username or password' },
  forbidden: { status: 403, title: 'Not allowed for this principal' },
  not_found: { status: 404, title: 'Resource not found' },
  account_not_found: { status: 404, title: 'Account not found' },
  transfer_not_found: { status: 404, title: 'Transfer not found' },
  hold_not_found: { status: 404, title: 'Hold not found' },
  token_issuance_disabled: { status: 404, title: 'Tokens are issued by the external identity provider' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  not_acceptable: { status: 406, title: 'Not acceptable' },
  idempotency_conflict: { status: 409, title: 'Idempotency key reused with different fields' },
  account_exists: { status: 409, title: 'Account already exists' },
  account_command_rejected: { status: 409, title: 'Account command rejected' },
  transfer_id_ambiguous: {
    status: 409,
    title: 'The transferId was decided on several accounts; name one with ?account=',
  },
  hold_id_ambiguous: {
    status: 409,
    title: 'The hold id names holds of several accounts; name one with ?account= (or from in the body)',
  },
  payload_too_large: { status: 413, title: 'Request body too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  validation_failed: { status: 422, title: 'Request body failed validation' },
  too_many_requests: { status: 429, title: 'Too many concurrent requests of this kind' },
  quota_exceeded: { status: 429, title: 'A quota of this principal is used up' },
  login_throttled: { status: 429, title: 'Too many failed logins' },
  internal: { status: 500, title: 'Internal error' },
  not_implemented: { status: 501, title: 'Method not implemented' },
  bad_gateway: { status: 502, title: 'The owning instance answered badly' },
  partition_unavailable: { status: 503, title: 'The account partition is restoring, unowned or moving' },
  not_ready: { status: 503, title: 'The instance is not ready' },
  kafka_unavailable: { status: 503, title: 'The command could not be written to Kafka' },
  database_unavailable: { status: 503, title: 'The read model database is unavailable' },
  auth_unavailable: { status: 503, title: 'The token issuer keys could not be fetched' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEM_CODES;

/** One invalid input field: `field` is a JSON pointer-ish path ("amount", "query.limit", "header.Idempotency-Key"). */
export interface FieldError {
  field: string;
  message: string;
}

export interface ApiErrorOptions {
  /** Extra problem members (RFC 9457 extension members), e.g. `errors` or the outcome of a conflict. */
  extensions?: Record<string, unknown>;
  /** Seconds for a Retry-After header (503, 429). */
  retryAfterS?: number;
  headers?: Record<string, string>;
  cause?: unknown;
}

/** A user-facing error: its code, detail and extensions are safe to show to the client. */
export class ApiError extends Error {
  readonly code: ProblemCode;
  readonly status: number;
  readonly userFacing = true;
  readonly extensions: Record<string, unknown>;
  readonly retryAfterS: number | undefined;
  readonly headers: Record<string, string>;

  constructor(code: ProblemCode, detail: string, options: ApiErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApiError';
    this.code = code;
    this.status = PROBLEM_CODES[code].status;
    this.extensions = options.extensions ?? {};
    this.retryAfterS = options.retryAfterS;
    this.headers = options.headers ?? {};
  }
}

export function validationFailed(errors: FieldError[]): ApiError {
  const detail = errors.map((e) => `${e.field}: ${e.message}`).join('; ');
  return new ApiError('validation_failed', detail, { extensions: { errors } });
}

export function invalidParameter(field: string, message: string): ApiError {
  return new ApiError('invalid_parameter', `${field}: ${message}`, { extensions: { errors: [{ field, message }] } });
}

export function unavailable(
  code: 'partition_unavailable' | 'not_ready' | 'kafka_unavailable' | 'database_unavailable' | 'auth_unavailable',
  detail: string,
  retryAfterS = 1,
  cause?: unknown,
): ApiError {
  return new ApiError(code, detail, { retryAfterS, cause });
}

/** The problem+json body of an error; `instance` is the request path, `requestId` ties it to the logs. */
export function problemBody(error: ApiError, instance: string, requestId: string): Record<string, unknown> {
  return {
    ...error.extensions,
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: PROBLEM_CODES[error.code].title,
    status: error.status,
    detail: error.message,
    instance,
    code: error.code,
    requestId,
  };
}

/** Maps a framework error (http-errors thrown by Koa or the router) with an exposable status to a code. */
export function codeForStatus(status: number): ProblemCode {
  const byStatus: Record<number, ProblemCode> = {
    400: 'invalid_parameter',
    401: 'unauthenticated',
    403: 'forbidden',
    404: 'not_found',
    405: 'method_not_allowed',
    406: 'not_acceptable',
    413: 'payload_too_large',
    415: 'unsupported_media_type',
    422: 'validation_failed',
    429: 'too_many_requests',
    501: 'not_implemented',
  };
  return byStatus[status] ?? 'internal';
}
