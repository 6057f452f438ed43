// The OpenAPI 3.1 description of every route, served at /openapi.json. Written by hand next to the routes
// (test/unit/http/openapi.test.ts checks that every mounted route is described and vice versa).
import type { Config } from '../config/config.ts';
import { PROBLEM_CODES } from '../problems/errors.ts';

import { id, ref, type Schema, schemas } from './openapi-schemas.ts';

function problems(...statuses: number[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const status of statuses) {
    const codes = Object.entries(PROBLEM_CODES)
      .filter(([, v]) => v.status === status)
      .map(([code]) => code);
    out[String(status)] = {
      description: codes.join(', '),
      content: { 'application/problem+json': { schema: ref('Problem') } },
    };
  }
  return out;
}

function json(description: string, schema: Schema): Record<string, unknown> {
  return { description, content: { 'application/json': { schema } } };
}

const waitParam = {
  name: 'wait',
  in: 'query',
  required: false,
  description: 'Milliseconds to wait for the outcome (bounded by HTTP_WAIT_MAX_MS); 202 when it does not come in time',
  schema: { type: 'integer', minimum: 0 },
};
const idPath = { name: 'id', in: 'path', required: true, schema: id };
const accountQuery = {
  name: 'account',
  in: 'query',
  required: false,
  description: 'The account the command acted on (from of a transfer, accountId of a deposit or withdrawal)',
  schema: id,
};
const idempotencyHeader = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description: 'The transferId, when not in the body',
  schema: id,
};
const secured = [{ bearer: [] }];

function moneyCommand(summary: string, body: string, roles: string): Record<string, unknown> {
  return {
    post: {
      summary,
      description: `Roles: ${roles}. Idempotent by transferId within the account the command acts on (from, or accountId): the same transferId on another account is another command. Location names both: /v1/transfers/{id}?account={account}.`,
      security: secured,
      parameters: [waitParam, idempotencyHeader],
      requestBody: { required: true, content: { 'application/json': { schema: ref(body) } } },
      responses: {
        '200': json('The outcome arrived within ?wait', ref('Transfer')),
        '202': json('Accepted; the outcome will be at Location', ref('Pending')),
        ...problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
      },
    },
  };
}

const holdRoles =
  'Roles: customer (holds debiting an own account: from), admin. Idempotent by transferId within from, as transfers are.';
const holdAccountQuery = {
  name: 'account',
  in: 'query',
  required: false,
  description: "The hold's from account (needed only when the hold id was used on several accounts)",
  schema: id,
};

function holdCommand(summary: string, description: string, body: string | undefined, path: boolean) {
  return {
    post: {
      summary,
      description: `${holdRoles} ${description}`,
      security: secured,
      parameters: [...(path ? [idPath] : []), waitParam, idempotencyHeader],
      ...(body === undefined
        ? {}
        : { requestBody: { required: !path, content: { 'application/json': { schema: ref(body) } } } }),
      responses: {
        '200': json(
          'The outcome arrived within ?wait; status pending | posted | voided, or failed with code',
          ref('HoldOutcome'),
        ),
        '202': json('Accepted; the hold is at Location, the outcome at transfer', ref('HoldAccepted')),
        ...problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
      },
    },
  };
}

function holdPaths(): Record<string, unknown> {
  return {
    '/v1/holds': holdCommand(
      'Place a hold: reserve money on from (available drops, posted does not) until it is posted, voided or expires',
      'Exactly one deadline: timeoutMs (1 ms to 30 days from the decision) or expiresAt (RFC 3339, in the future). The hold id is its transferId.',
      'HoldRequest',
      false,
    ),
    '/v1/holds/{id}/post': holdCommand(
      'Post a hold: move all of it, or amount (≤ held, with its currency) and release the rest',
      'The body may be left out when an Idempotency-Key header carries the transferId; without from the route finds it in the read model (404 hold_not_found until the sink has recorded the hold). A hold resolves once: a later post or void fails hold_already_posted, hold_already_voided or hold_expired.',
      'PostHoldRequest',
      true,
    ),
    '/v1/holds/{id}/void': holdCommand(
      'Void a hold: release all of it',
      'As a post, without amount.',
      'VoidHoldRequest',
      true,
    ),
    '/v1/holds/{id}': {
      get: {
        summary: "A hold's state from the read model: pending, posted, voided or expired, amounts, deadline, times",
        description:
          'Any role; a customer sees holds naming an own account (from or to). A hold is identified by (from, id): 409 hold_id_ambiguous lists the accounts when the id names holds of several. A hold that failed to be placed has no state (its decision is at /v1/transfers/{id}).',
        security: secured,
        parameters: [idPath, holdAccountQuery],
        responses: { '200': json('The hold', ref('Hold')), ...problems(400, 401, 403, 404, 409, 503) },
      },
    },
  };
}

function paths(): Record<string, unknown> {
  return {
    '/healthz': {
      get: {
        summary: 'Liveness',
        responses: {
          '200': json('Alive', { type: 'object' }),
          '503': json('The processor failed', { type: 'object' }),
        },
      },
    },
    '/readyz': {
      get: {
        summary:
          'Readiness: processor RUNNING, every assigned task restored, no unresolved sink reject ({ready} only; reasons and details with an admin token or on MANAGEMENT_PORT)',
        responses: {
          '200': json('Ready', ref('Readiness')),
          '503': json('Not ready; reasons say why (details only)', ref('Readiness')),
        },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics (admin token; no token on MANAGEMENT_PORT)',
        responses: {
          '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } },
        },
      },
    },
    '/openapi.json': {
      get: { summary: 'This document', responses: { '200': json('OpenAPI 3.1', { type: 'object' }) } },
    },
    '/v1/auth/token': {
      post: {
        summary: 'Issue a bearer token (dev mode: users in PostgreSQL)',
        requestBody: { required: true, content: { 'application/json': { schema: ref('TokenRequest') } } },
        responses: { '200': json('A token', ref('Token')), ...problems(400, 401, 404, 413, 415, 422, 503) },
      },
    },
    '/v1/accounts': {
      post: {
        summary: 'Open an account',
        description: 'Roles: teller, admin.',
        security: secured,
        parameters: [waitParam],
        requestBody: { required: true, content: { 'application/json': { schema: ref('OpenAccount') } } },
        responses: {
          '201': json('Opened (with ?wait)', { type: 'object' }),
          '202': json('Accepted', ref('Pending')),
          ...problems(400, 401, 403, 409, 413, 415, 422, 429, 503),
        },
      },
    },
    '/v1/accounts/{id}': {
      get: {
        summary: "Balance and state from the owning task's store (routed to the owner instance)",
        description:
          'Customers: own accounts only. With allowStale=true, an instance keeping a standby of the partition answers from it (body `stale`, header X-Bankstream-Standby-Lag: changelog records not applied yet) instead of proxying or answering 503.',
        security: secured,
        parameters: [
          idPath,
          {
            name: 'allowStale',
            in: 'query',
            schema: { type: 'boolean', default: false },
            description: 'Accept a read from a standby replica, which may be behind the owner',
          },
        ],
        responses: { '200': json('The account', ref('Account')), ...problems(400, 401, 403, 404, 502, 503) },
      },
    },
    '/v1/accounts/{id}/close': {
      post: {
        summary: 'Close an account (balance must be zero)',
        description: 'Roles: teller, admin.',
        security: secured,
        parameters: [idPath, waitParam],
        responses: {
          '200': json('Closed (with ?wait)', { type: 'object' }),
          '202': json('Accepted', ref('Pending')),
          ...problems(400, 401, 403, 404, 409, 503),
        },
      },
    },
    '/v1/accounts/{id}/transfers': {
      get: {
        summary: 'Transfer history from the read model, newest first (keyset pagination)',
        security: secured,
        description:
          'Read from the read replica (DATABASE_READ_URL) when one is set and no further behind than READ_REPLICA_LAG_MAX_MS; headers X-Read-Source (replica | primary) and X-Replica-Lag-Ms say where and how far behind.',
        parameters: [
          idPath,
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
          { name: 'cursor', in: 'query', schema: { type: 'string' } },
        ],
        responses: { '200': json('A page', ref('HistoryPage')), ...problems(400, 401, 403, 404, 503) },
      },
    },
    '/v1/accounts/{id}/events': {
      get: {
        summary: "Server-Sent Events of the account's outcomes",
        security: secured,
        parameters: [idPath],
        responses: {
          '200': {
            description:
              'event: transaction_completed | transaction_failed | account_event; data: the record JSON. event: hold for each state change of a hold naming the account (data: holdId, status pending | posted | voided | expired, from, to, amount, heldAmount?, currency, expiresAt?, by, at)',
            content: { 'text/event-stream': { schema: { type: 'string' } } },
          },
          ...problems(400, 401, 403, 404, 429, 503),
        },
      },
    },
    '/v1/admin/console': {
      get: {
        summary: "The operations console's snapshot (admin): topology, cluster grid, flow samples, dead letters",
        description:
          'What the page at /console draws: the topology the engine runs, the instance directory and a partition grid (running, restoring, moving, stopped), 2 s flow samples of the last 5 minutes of this instance, the latest dead letters with their headers and the latest sink rejects. The shape is ConsoleSnapshot in src/http/routes/console.ts.',
        security: secured,
        responses: { '200': json('The snapshot', { type: 'object' }), ...problems(401, 403, 503) },
      },
    },
    '/v1/transfers': moneyCommand(
      'Transfer between two accounts',
      'TransferRequest',
      'customer (from an own account), admin',
    ),
    '/v1/deposits': moneyCommand('Deposit external money', 'SingleLegRequest', 'teller, admin'),
    '/v1/withdrawals': moneyCommand('Withdraw money', 'SingleLegRequest', 'teller, admin'),
    '/v1/transfers/{id}': {
      get: {
        summary: 'The latest decision of (account, transferId) from the read model',
        description:
          'A transferId is unique per acted-on account (from, or accountId), and new again after the dedup retention. Without ?account= the answer is the latest decision when one account decided the id, or 409 transfer_id_ambiguous listing the accounts (extension member decisions: account, status, completedAt, location) when several did. Every decision is in the account history.',
        security: secured,
        parameters: [idPath, accountQuery],
        responses: { '200': json('The transfer', ref('Transfer')), ...problems(400, 401, 403, 404, 409, 503) },
      },
    },
    ...holdPaths(),
  };
}

export function openApiDocument(config: Config): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'bankstream API',
      version: '1.0.0',
      description: 'Exactly-once bank transfers on Kafka. Errors are RFC 9457 problem+json with a stable `code`.',
    },
    servers: [{ url: config.advertisedUrl }],
    paths: paths(),
    components: {
      schemas: schemas(),
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            config.auth.mode === 'dev' ? 'Get one from POST /v1/auth/token' : 'Issued by the identity provider',
        },
      },
    },
  };
}
