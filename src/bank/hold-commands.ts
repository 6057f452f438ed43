// The edge of the hold commands (README-BANK "Holds"): bytes → a validated hold, post_hold or void_hold,
// or a classified refusal, by the same rules as commands.ts and input-rules.ts (ids, amounts as strings, requestedAt, key).
// The processor (hold-dispatch.ts) calls it only for records commands.ts dead-lettered, so other commands pay nothing.
import { isUtf8 } from 'node:buffer';
import {
  checkRecordKey,
  describe,
  fingerprintText,
  ID_RULE,
  isFreeText,
  isId,
  keyText,
  parseIsoTimestamp,
  readAmount,
  REFERENCE_CHARS_MAX,
} from './input-rules.ts';
import type { TransferTerms } from './commands.ts';
import type { TransferFailureCode } from './failure-codes.ts';

export type HoldCommandType = 'hold' | 'post_hold' | 'void_hold';
const HOLD_TYPES: ReadonlySet<string> = new Set(['hold', 'post_hold', 'void_hold']);

/** The longest `timeoutMs`: 30 days (a card authorisation lasts about a week; an escrow a few weeks). */
export const HOLD_TIMEOUT_MS_MAX = 30 * 86_400_000;

export interface HoldCommand extends TransferTerms {
  readonly type: 'hold';
  /** Relative (from the decision time) or absolute deadline. */
  readonly deadline: { readonly timeoutMs: number } | { readonly expiresAtMs: number };
  readonly fingerprint: string;
}

export interface ResolveHold {
  readonly type: 'post_hold' | 'void_hold';
  readonly transferId: string;
  readonly holdId: string;
  readonly from: string;
  /** post_hold only, optional: minor units in `currency`, > 0. */
  readonly amount: bigint | undefined;
  readonly currency: string | undefined;
  readonly requestedAt: string;
  readonly fingerprint: string;
}

export type AnyHoldCommand = HoldCommand | ResolveHold;

/** Outcome fields of a hold command: only the fields that passed, in a stable order. */
export type HoldFields = Record<string, string>;

export type ParsedHold =
  | { readonly kind: 'hold_command'; readonly command: AnyHoldCommand }
  /** A post or void under another key than `from`: sent on to the task of `from`, undecided. */
  | { readonly kind: 'route'; readonly from: string }
  | {
      readonly kind: 'hold_rejected';
      readonly fields: HoldFields;
      readonly code: TransferFailureCode;
      readonly reason: string;
      readonly fingerprint: string;
    }
  | { readonly kind: 'dead_letter'; readonly error: string };

type Json = Record<string, unknown>;

/**
 * Parses a record as a hold command; undefined when its value is no JSON object whose `type` is a hold
 * command (the caller's answer stands then). `timestampMs` stands in for a missing requestedAt.
 */
export function parseHoldCommand(
  rawKey: Buffer | string | null,
  value: Buffer,
  timestampMs: number,
): ParsedHold | undefined {
  if (!isUtf8(value)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const raw = json as Json;
  const type = raw['type'];
  if (typeof type !== 'string' || !HOLD_TYPES.has(type)) return undefined;
  if (!isId(raw['transferId'])) return { kind: 'dead_letter', error: `${type} has no usable transferId (${ID_RULE})` };
  return parseFields(type as HoldCommandType, raw, keyText(rawKey), new Date(timestampMs).toISOString());
}

function parseFields(type: HoldCommandType, raw: Json, key: string | null | undefined, fallbackAt: string): ParsedHold {
  const fields: HoldFields = { transferId: raw['transferId'] as string, type, requestedAt: fallbackAt };
  const fingerprint = fingerprintOf(type, raw);
  const reject = (code: TransferFailureCode, reason: string): ParsedHold => ({
    kind: 'hold_rejected',
    fields,
    code,
    reason,
    fingerprint,
  });
  const requestedAtRaw = raw['requestedAt'];
  if (requestedAtRaw !== undefined) {
    const ms = typeof requestedAtRaw === 'string' ? parseIsoTimestamp(requestedAtRaw) : undefined;
    if (ms === undefined) return reject('malformed', 'requestedAt must be an ISO-8601 timestamp with a time zone');
    fields['requestedAt'] = new Date(ms).toISOString();
  }
  const from = raw['from'];
  if (!isId(from)) return reject('malformed', `from must be ${ID_RULE}, got ${describe(from)}`);
  fields['from'] = from;
  if (type !== 'hold') {
    // A post or void names its hold by (from, holdId): under another key it is routed to the task of `from`.
    if (typeof key === 'string' && key !== from) return { kind: 'route', from };
  }
  const keyError = checkRecordKey(key, 'from', from);
  if (keyError) return reject('malformed', keyError);
  if (type === 'hold') return parseHold(raw, fields, reject, fingerprint);
  const holdId = raw['holdId'];
  if (!isId(holdId)) return reject('malformed', `holdId must be ${ID_RULE}, got ${describe(holdId)}`);
  fields['holdId'] = holdId;
  let amount: bigint | undefined;
  let currency: string | undefined;
  if (type === 'post_hold' && (raw['amount'] !== undefined || raw['currency'] !== undefined)) {
    const money = parseAmount(raw, fields, reject);
    if ('kind' in money) return money;
    ({ amount, currency } = money);
  } else if (type === 'void_hold' && raw['amount'] !== undefined) {
    return reject('malformed', 'void_hold takes no amount (it releases the whole hold)');
  }
  const command: ResolveHold = {
    type,
    transferId: fields['transferId']!,
    holdId,
    from,
    amount,
    currency,
    requestedAt: fields['requestedAt']!,
    fingerprint,
  };
  return { kind: 'hold_command', command };
}

type Reject = (code: TransferFailureCode, reason: string) => ParsedHold;

function parseHold(raw: Json, fields: HoldFields, reject: Reject, fingerprint: string): ParsedHold {
  const to = raw['to'];
  if (!isId(to)) return reject('malformed', `to must be ${ID_RULE}, got ${describe(to)}`);
  fields['to'] = to;
  const reference = raw['reference'];
  if (reference !== undefined) {
    if (!isFreeText(reference, REFERENCE_CHARS_MAX)) {
      return reject(
        'malformed',
        `reference must be a string of at most ${REFERENCE_CHARS_MAX} characters, well-formed Unicode, without control characters`,
      );
    }
    fields['reference'] = reference;
  }
  const money = parseAmount(raw, fields, reject);
  if ('kind' in money) return money;
  const { timeoutMs, expiresAt } = raw;
  let deadline: HoldCommand['deadline'];
  if ((timeoutMs === undefined) === (expiresAt === undefined)) {
    return reject('malformed', 'a hold needs exactly one deadline: timeoutMs or expiresAt');
  }
  if (timeoutMs !== undefined) {
    if (
      typeof timeoutMs !== 'number' ||
      !Number.isSafeInteger(timeoutMs) ||
      timeoutMs < 1 ||
      timeoutMs > HOLD_TIMEOUT_MS_MAX
    ) {
      return reject(
        'malformed',
        `timeoutMs must be an integer from 1 to ${HOLD_TIMEOUT_MS_MAX}, got ${describe(timeoutMs)}`,
      );
    }
    deadline = { timeoutMs };
  } else {
    const ms = typeof expiresAt === 'string' ? parseIsoTimestamp(expiresAt) : undefined;
    if (ms === undefined) return reject('malformed', 'expiresAt must be an ISO-8601 timestamp with a time zone');
    deadline = { expiresAtMs: ms };
  }
  const command: HoldCommand = {
    type: 'hold',
    transferId: fields['transferId']!,
    from: fields['from']!,
    to,
    amount: money.amount,
    currency: money.currency,
    reference: fields['reference'],
    requestedAt: fields['requestedAt']!,
    deadline,
    fingerprint,
  };
  return { kind: 'hold_command', command };
}

/** currency then amount, as commands.ts reads them; valid ones are copied into `fields`. */
function parseAmount(raw: Json, fields: HoldFields, reject: Reject): { amount: bigint; currency: string } | ParsedHold {
  const money = readAmount(
    raw,
    fields,
    (error, amount, currency) =>
      `amount ${describe(amount)} is ${error === 'precision' ? `more precise than ${currency}` : error === 'range' ? 'too large' : error}`,
  );
  return 'code' in money ? reject(money.code, money.reason) : money;
}

/** The fields that define the command, raw as sent (README-BANK "Holds": idempotency). */
function fingerprintOf(type: HoldCommandType, raw: Json): string {
  const fields =
    type === 'hold'
      ? [
          type,
          raw['from'],
          raw['to'],
          raw['amount'],
          raw['currency'],
          raw['reference'],
          raw['timeoutMs'],
          raw['expiresAt'],
        ]
      : [type, raw['holdId'], raw['from'], raw['amount'], raw['currency']];
  return fingerprintText(fields);
}
