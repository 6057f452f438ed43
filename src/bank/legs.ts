// Internal leg messages on the credits repartition topic (`bankstream-credits`), discriminated by `leg`.
// A transfer whose `to` lives in another task travels: debit (from task) → credit (to task, key = to)
// → settle or refund (back to the from task, key = from). Amounts are decimal strings, as on every wire.
import { isUtf8 } from 'node:buffer';
import type { TransferTerms } from './commands.ts';
import type { TransferFailureCode } from './failure-codes.ts';
import { currencyDigits, formatMoney, parseMoney } from './money.ts';
import { ID_CHARS_MAX, isStorableText, keyText, parseIsoTimestamp, REFERENCE_CHARS_MAX } from './input-rules.ts';

/** A refund's reason is written by this topology; it is still bounded, since it reaches Postgres. */
const REASON_CHARS_MAX = 1024;

/** Ids in legs: storable (see isStorableText for why not the command rule). */
function isLegId(value: unknown): value is string {
  return isStorableText(value, 1, ID_CHARS_MAX);
}

export interface CreditLeg extends TransferTerms {
  readonly leg: 'credit';
}

/** The credit succeeded: the from task may forget the in-flight amount. */
export interface SettleLeg {
  readonly leg: 'settle';
  readonly transferId: string;
  readonly from: string;
}

/** The credit was refused: the from task gives the money back and answers `transaction_failed` with `code`. */
export interface RefundLeg {
  readonly leg: 'refund';
  readonly transferId: string;
  readonly from: string;
  readonly code: TransferFailureCode;
  readonly reason: string;
}

export type Leg = CreditLeg | SettleLeg | RefundLeg;

/** The JSON value of a leg (the credits sink serializes it). */
export function legValue(leg: Leg): Record<string, string> {
  if (leg.leg !== 'credit') return { ...leg };
  const digits = currencyDigits(leg.currency);
  if (digits === undefined) throw new Error(`credit leg ${leg.transferId}: unknown currency ${leg.currency}`);
  const value: Record<string, string> = {
    leg: 'credit',
    transferId: leg.transferId,
    from: leg.from,
    to: leg.to,
    amount: formatMoney(leg.amount, digits),
    currency: leg.currency,
    requestedAt: leg.requestedAt,
  };
  if (leg.reference !== undefined) value['reference'] = leg.reference;
  return value;
}

/** The key a leg must carry: the account of the task that handles it. */
export function legKey(leg: Leg): string {
  return leg.leg === 'credit' ? leg.to : leg.from;
}

const REFUND_CODES: ReadonlySet<string> = new Set(['account_not_found', 'account_closed', 'currency_mismatch']);

/**
 * Parses a leg. Legs are written only by this topology, so a bad one is a bug or a foreign writer:
 * it is returned as an error for the dead-letter queue, never thrown (it must not stop a partition).
 */
export function parseLeg(rawKey: Buffer | string | null, value: Buffer | null): Leg | { error: string } {
  const key = keyText(rawKey);
  let raw: Record<string, unknown>;
  try {
    if (value !== null && !isUtf8(value)) return { error: 'internal leg is not valid UTF-8' };
    const json: unknown = value === null ? null : JSON.parse(value.toString('utf8'));
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      return { error: 'internal leg is not a JSON object' };
    raw = json as Record<string, unknown>;
  } catch (error) {
    return { error: `internal leg is not JSON: ${(error as Error).message}` };
  }
  const { leg, transferId, from } = raw;
  if (!isLegId(transferId) || !isLegId(from)) return { error: 'internal leg has no usable transferId and from' };
  let parsed: Leg | { error: string };
  if (leg === 'settle') parsed = { leg, transferId, from };
  else if (leg === 'refund') parsed = parseRefund(raw, transferId, from);
  else if (leg === 'credit') parsed = parseCredit(raw, transferId, from);
  else return { error: `unknown internal leg ${JSON.stringify(leg) ?? 'undefined'}` };
  if ('error' in parsed) return parsed;
  if (key !== legKey(parsed)) {
    const shown =
      key === undefined
        ? 'not valid UTF-8'
        : key === null || key.length <= 64
          ? JSON.stringify(key)
          : `of ${key.length} characters`;
    return { error: `${parsed.leg} leg ${transferId}: key ${shown} is not ${JSON.stringify(legKey(parsed))}` };
  }
  return parsed;
}

function parseRefund(raw: Record<string, unknown>, transferId: string, from: string): RefundLeg | { error: string } {
  const { code, reason } = raw;
  if (typeof code !== 'string' || !REFUND_CODES.has(code) || !isStorableText(reason, 0, REASON_CHARS_MAX)) {
    return { error: `refund leg ${transferId}: bad code or reason` };
  }
  return { leg: 'refund', transferId, from, code: code as TransferFailureCode, reason };
}

function parseCredit(raw: Record<string, unknown>, transferId: string, from: string): CreditLeg | { error: string } {
  const { to, amount, currency, reference } = raw;
  const digits = typeof currency === 'string' ? currencyDigits(currency) : undefined;
  const requestedMs = typeof raw['requestedAt'] === 'string' ? parseIsoTimestamp(raw['requestedAt']) : undefined;
  if (!isLegId(to) || digits === undefined || typeof amount !== 'string' || requestedMs === undefined) {
    return { error: `credit leg ${transferId}: missing or bad to, currency, amount or requestedAt` };
  }
  if (reference !== undefined && !isStorableText(reference, 0, REFERENCE_CHARS_MAX))
    return { error: `credit leg ${transferId}: bad reference` };
  const parsed = parseMoney(amount, digits);
  if (!parsed.ok) return { error: `credit leg ${transferId}: bad amount (${parsed.error})` };
  return {
    leg: 'credit',
    transferId,
    from,
    to,
    amount: parsed.minor,
    currency: currency as string,
    reference,
    requestedAt: new Date(requestedMs).toISOString(),
  };
}
