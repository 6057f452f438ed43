// The OpenAPI document's shared schemas (components.schemas) and the small schema helpers its paths use.
import { PROBLEM_CODES, PROBLEM_TYPE_BASE } from '../problems/errors.ts';

export type Schema = Record<string, unknown>;

export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
export const money: Schema = {
  type: 'string',
  pattern: '^(0|[1-9][0-9]*)(\\.[0-9]+)?$',
  examples: ['125.50'],
  description: "A decimal string, never a JSON number; at most the currency's minor digits",
};
export const id: Schema = { type: 'string', minLength: 1, maxLength: 256, pattern: '^[\\x21-\\x7e]+$' };

export function schemas(): Record<string, Schema> {
  const codes = Object.keys(PROBLEM_CODES);
  return {
    Problem: {
      type: 'object',
      required: ['type', 'title', 'status', 'code'],
      properties: {
        type: { type: 'string', format: 'uri', description: `${PROBLEM_TYPE_BASE}<code>` },
        title: { type: 'string' },
        status: { type: 'integer' },
        detail: { type: 'string' },
        instance: { type: 'string' },
        code: { type: 'string', enum: codes },
        requestId: { type: 'string' },
        errors: {
          type: 'array',
          items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
    TokenRequest: {
      type: 'object',
      required: ['username', 'password'],
      additionalProperties: false,
      properties: { username: id, password: { type: 'string', minLength: 1 } },
    },
    Token: {
      type: 'object',
      properties: {
        access_token: { type: 'string' },
        token_type: { const: 'Bearer' },
        expires_in: { type: 'integer' },
        role: { enum: ['customer', 'teller', 'admin'] },
      },
    },
    OpenAccount: {
      type: 'object',
      required: ['ownerId', 'currency'],
      additionalProperties: false,
      properties: {
        accountId: id,
        ownerId: id,
        currency: { type: 'string', pattern: '^[A-Z]{3}$' },
        overdraftLimit: money,
      },
    },
    TransferRequest: {
      type: 'object',
      required: ['from', 'to', 'amount', 'currency'],
      additionalProperties: false,
      properties: {
        transferId: id,
        from: id,
        to: id,
        amount: money,
        currency: { type: 'string' },
        reference: { type: 'string', maxLength: 256 },
      },
    },
    SingleLegRequest: {
      type: 'object',
      required: ['accountId', 'amount', 'currency'],
      additionalProperties: false,
      properties: { transferId: id, accountId: id, amount: money, currency: { type: 'string' } },
    },
    HoldRequest: {
      type: 'object',
      required: ['from', 'to', 'amount', 'currency'],
      additionalProperties: false,
      description: 'Exactly one of timeoutMs and expiresAt',
      properties: {
        transferId: { ...id, description: "The hold's id (or the Idempotency-Key header)" },
        from: id,
        to: id,
        amount: money,
        currency: { type: 'string' },
        reference: { type: 'string', maxLength: 256 },
        timeoutMs: { type: 'integer', minimum: 1, maximum: 30 * 86_400_000, description: 'A JSON integer' },
        expiresAt: { type: 'string', format: 'date-time' },
      },
    },
    PostHoldRequest: {
      type: 'object',
      additionalProperties: false,
      properties: {
        transferId: { ...id, description: "The post's own id (or the Idempotency-Key header)" },
        from: { ...id, description: "The hold's from account; found in the read model when left out" },
        amount: { ...money, description: 'At most the held amount; needs currency. Without it the whole hold' },
        currency: { type: 'string' },
      },
    },
    VoidHoldRequest: {
      type: 'object',
      additionalProperties: false,
      properties: { transferId: id, from: id },
    },
    HoldAccepted: {
      type: 'object',
      properties: {
        transferId: { type: 'string' },
        type: { enum: ['hold', 'post_hold', 'void_hold'] },
        holdId: { type: 'string' },
        status: { const: 'accepted' },
        location: { type: 'string', description: 'The hold' },
        transfer: { type: 'string', description: "The command's decision (/v1/transfers/{transferId}?account=)" },
      },
    },
    HoldOutcome: {
      type: 'object',
      description: 'The outcome record (README-BANK "Holds: outcomes") with status the hold\'s new one, or failed',
      properties: {
        transferId: { type: 'string' },
        type: { enum: ['hold', 'post_hold', 'void_hold'] },
        status: { enum: ['pending', 'posted', 'voided', 'failed'] },
        code: { type: 'string' },
        reason: { type: 'string' },
        holdId: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        amount: money,
        heldAmount: money,
        currency: { type: 'string' },
        expiresAt: { type: 'string', format: 'date-time' },
        location: { type: 'string' },
      },
    },
    Hold: {
      type: 'object',
      required: ['holdId', 'from', 'to', 'status', 'amount', 'currency'],
      properties: {
        holdId: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        status: { enum: ['pending', 'posted', 'voided', 'expired'] },
        amount: { ...money, description: 'The held amount' },
        currency: { type: 'string' },
        postedAmount: { ...money, description: 'Posted holds: what moved' },
        releasedAmount: { ...money, description: 'Posted holds: amount − postedAmount, given back to from' },
        expiresAt: { type: ['string', 'null'], format: 'date-time' },
        placedAt: { type: ['string', 'null'], format: 'date-time' },
        resolvedAt: { type: 'string', format: 'date-time' },
        resolvedBy: { type: 'string', description: 'transferId of the post or void (none for an expiry)' },
      },
    },
    Pending: {
      type: 'object',
      properties: {
        transferId: { type: 'string' },
        accountId: { type: 'string' },
        status: { const: 'pending' },
        location: { type: 'string' },
      },
    },
    Transfer: {
      type: 'object',
      required: ['transferId', 'status'],
      properties: {
        transferId: { type: 'string' },
        type: { enum: ['deposit', 'withdrawal', 'transfer'] },
        status: { enum: ['completed', 'failed'] },
        code: {
          type: 'string',
          description:
            'Failure code: insufficient_funds, account_not_found, account_closed, currency_mismatch, same_account, invalid_amount, malformed',
        },
        reason: { type: 'string' },
        accountId: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        amount: money,
        currency: { type: 'string' },
        reference: { type: 'string' },
        requestedAt: { type: 'string', format: 'date-time' },
        completedAt: { type: 'string', format: 'date-time' },
      },
    },
    Account: {
      type: 'object',
      properties: {
        accountId: { type: 'string' },
        ownerId: { type: 'string' },
        currency: { type: 'string' },
        status: { enum: ['open', 'closed'] },
        balance: { ...money, description: 'The posted balance (same as posted)' },
        inFlight: money,
        posted: { ...money, description: 'What the account holds; pending holds are not taken off' },
        pendingDebits: { ...money, description: 'Sum of pending holds debiting this account' },
        pendingCredits: { ...money, description: 'Sum of pending holds crediting this account (not available)' },
        available: { ...money, description: 'posted − pendingDebits + overdraftLimit: what may be spent or held' },
        overdraftLimit: money,
        openedAt: { type: 'string', format: 'date-time' },
        closedAt: { type: 'string', format: 'date-time' },
        position: {
          type: 'object',
          description: 'Changelog offsets of the committed state read',
          properties: {
            partition: { type: 'integer' },
            accounts: { type: ['string', 'null'] },
            balances: { type: ['string', 'null'] },
          },
        },
        servedBy: { type: 'object', properties: { instanceId: { type: 'string' }, url: { type: 'string' } } },
        stale: {
          type: 'object',
          description: 'Only on a read from a standby (allowStale=true)',
          properties: {
            standby: { const: true },
            lagRecords: { type: 'string', description: 'Changelog records the standby had not applied yet' },
          },
        },
      },
    },
    Readiness: {
      // Without an admin token (or the management port) only `ready`: the rest are details.
      type: 'object',
      required: ['ready'],
      properties: {
        ready: { type: 'boolean' },
        reasons: {
          type: 'array',
          items: { type: 'string' },
          description:
            'Why not ready (empty when ready): streams not RUNNING, tasks restoring, "sink_rejects: ..." when records could not be stored in Postgres',
        },
        instanceId: { type: 'string' },
        url: { type: 'string' },
        streams: { type: 'object' },
        sink: { type: ['object', 'null'] },
        routing: { type: 'array' },
      },
    },
    HistoryPage: {
      type: 'object',
      properties: {
        accountId: { type: 'string' },
        items: { type: 'array', items: ref('Transfer') },
        nextCursor: { type: ['string', 'null'] },
        next: { type: ['string', 'null'] },
      },
    },
  };
}
