// The request bodies of the hold routes (routes/holds.ts), checked by the processor's own rules
// (README-BANK "Holds") so the API refuses, with one 422 naming every problem, what the processor would
// answer malformed: ids, amounts as decimal strings (never JSON numbers), exactly one deadline
// (timeoutMs a JSON integer of 1 ms to 30 days, or expiresAt an RFC 3339 instant in the future), a post's
// amount with its currency, no unknown field. Pure functions: the property tests drive them directly.
import { HOLD_TIMEOUT_MS_MAX } from '../bank/hold-commands.ts';
import type { HoldCommand, ResolveHoldCommand } from '../commands/sender.ts';
import type { JsonObject } from './body.ts';
import { BodyReader } from './validate.ts';

export { HOLD_TIMEOUT_MS_MAX };

/** The command's transferId: the Idempotency-Key header, the body's, or both when equal. */
function transferIdOf(body: BodyReader, headerKey: string | undefined, what: string): string | undefined {
  // Without the header, a transferId the body has must be an id: an own property holding undefined too (no
  // JSON body has one, but a JsonObject can), else it would pass here unreported and reach the bank as no
  // transferId at all, which it dead-letters. Absent, it is reported as required below.
  const required = headerKey === undefined && body.has('transferId');
  const bodyId = required ? body.id('transferId') : body.id('transferId', true);
  if (headerKey !== undefined && bodyId !== undefined && headerKey !== bodyId) {
    body.fail('transferId', 'differs from the Idempotency-Key header; send one or make them equal');
  }
  const transferId = headerKey ?? bodyId;
  if (transferId === undefined && !body.has('transferId'))
    body.fail('transferId', `is required (or an Idempotency-Key header): it makes retries of the ${what} safe`);
  return transferId;
}

/** POST /v1/holds: a hold command, or a thrown 422. `nowMs`: an expiresAt must lie after it. */
export function parseHoldRequest(json: JsonObject, headerKey: string | undefined, nowMs: number): HoldCommand {
  const body = new BodyReader(json);
  const transferId = transferIdOf(body, headerKey, 'hold');
  const currency = body.currency('currency');
  const from = body.id('from');
  const to = body.id('to');
  const amount = body.money('amount', currency);
  const reference = body.reference('reference');
  const hasTimeout = body.has('timeoutMs');
  const hasExpiry = body.has('expiresAt');
  let timeoutMs: number | undefined;
  let expiresAt: string | undefined;
  if (hasTimeout === hasExpiry) {
    if (hasTimeout) {
      body.integer('timeoutMs', 1, HOLD_TIMEOUT_MS_MAX);
      body.refuse('expiresAt', 'a hold takes one deadline: timeoutMs or expiresAt, not both');
    } else body.fail('timeoutMs', 'a hold needs a deadline: timeoutMs (ms from now) or expiresAt');
  } else if (hasTimeout) {
    timeoutMs = body.integer('timeoutMs', 1, HOLD_TIMEOUT_MS_MAX);
  } else {
    const ms = body.timestamp('expiresAt');
    if (ms !== undefined && ms <= nowMs) body.fail('expiresAt', 'must lie in the future');
    else if (ms !== undefined) expiresAt = new Date(ms).toISOString();
  }
  body.done();
  return {
    type: 'hold',
    transferId: transferId!,
    from: from!,
    to: to!,
    amount: amount!,
    currency: currency!,
    ...(reference === undefined ? {} : { reference }),
    ...(timeoutMs === undefined ? { expiresAt: expiresAt! } : { timeoutMs }),
  };
}

/** The fields of POST /v1/holds/:id/post and /void; `from` may be left to the route (the hold's row). */
export interface ResolveRequest {
  transferId: string;
  from: string | undefined;
  amount: string | undefined;
  currency: string | undefined;
}

/** POST /v1/holds/:id/post | void: the body's fields, or a thrown 422. A void takes no amount. */
export function parseResolveRequest(
  type: ResolveHoldCommand['type'],
  json: JsonObject,
  headerKey: string | undefined,
): ResolveRequest {
  const body = new BodyReader(json);
  const transferId = transferIdOf(body, headerKey, type === 'post_hold' ? 'post' : 'void');
  const from = body.has('from') ? body.id('from') : undefined;
  let amount: string | undefined;
  let currency: string | undefined;
  if (type === 'post_hold' && (body.has('amount') || body.has('currency'))) {
    // The amount is read with its currency's digits; a partial post names both.
    currency = body.currency('currency');
    amount = body.money('amount', currency);
  }
  if (type === 'void_hold') {
    for (const field of ['amount', 'currency'])
      if (body.has(field)) body.refuse(field, 'a void takes no amount: it releases the whole hold');
  }
  body.done();
  return { transferId: transferId!, from, amount, currency };
}
