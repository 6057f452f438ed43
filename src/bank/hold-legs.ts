// Internal legs of holds on the credits topic (README-BANK "Holds: across partitions"). Written only by
// this topology and MAC-checked by the engine; a bad one is a dead letter, never a throw.
//   hold_credit   (key to)    the from task reserved; the to task checks `to` and records a pending credit
//   hold_accepted (key from)  ... it did: the hold is pending
//   hold_refused  (key from)  ... it could not (code): the from task releases and fails the hold
//   hold_post     (key to)    the from task posted: the to task turns the pending credit into money
//   hold_settle   (key from)  ... done: the posted amount is no longer in flight
//   hold_release  (key to)    the from task voided or expired the hold: the to task drops the pending credit
//   hold_route    (key from)  a post_hold / void_hold that arrived under another key, unchanged
//   hold_expire   (key from)  the from task's expiry punctuator: the hold of this deadline is due, expire it
//                             (sent again after a restart or a timeout: the hold's state makes it act once)
import { isUtf8 } from 'node:buffer';
import { ID_CHARS_MAX, isStorableText, keyText } from './input-rules.ts';
import { currencyDigits, formatMoney, parseMoney } from './money.ts';
import type { TransferFailureCode } from './failure-codes.ts';

export type HoldLeg =
  | { leg: 'hold_credit'; holdId: string; from: string; to: string; amount: bigint; currency: string }
  | { leg: 'hold_accepted'; holdId: string; from: string }
  | { leg: 'hold_refused'; holdId: string; from: string; code: TransferFailureCode; reason: string }
  | { leg: 'hold_post'; holdId: string; from: string; to: string; amount: bigint; currency: string }
  | { leg: 'hold_settle'; holdId: string; from: string }
  | { leg: 'hold_release'; holdId: string; from: string; to: string }
  | { leg: 'hold_route'; from: string; command: string; timestamp: number }
  | { leg: 'hold_expire'; holdId: string; from: string; expiresAtMs: number };

const TO_SIDE: ReadonlySet<string> = new Set(['hold_credit', 'hold_post', 'hold_release']);
const REFUSAL_CODES: ReadonlySet<string> = new Set(['account_not_found', 'account_closed', 'currency_mismatch']);
const REASON_CHARS_MAX = 1024;
/** A routed command is a command record's value: bounded like one (the input topic's message size). */
const ROUTED_COMMAND_CHARS_MAX = 1_048_576;

/** How a leg's value starts (JSON.stringify of its object): a cheap test before parsing it as a hold leg. */
export const HOLD_LEG_MARK = Buffer.from('{"leg":"hold_', 'utf8');

export function holdLegKey(leg: HoldLeg): string {
  return TO_SIDE.has(leg.leg) ? (leg as { to: string }).to : leg.from;
}

/** The JSON value of a leg: amounts as decimal strings with the currency's digits. */
export function holdLegValue(leg: HoldLeg): Record<string, string> {
  if (leg.leg === 'hold_credit' || leg.leg === 'hold_post') {
    return { ...leg, amount: formatMoney(leg.amount, currencyDigits(leg.currency)!) };
  }
  if (leg.leg === 'hold_route') return { ...leg, timestamp: String(leg.timestamp) };
  if (leg.leg === 'hold_expire') return { ...leg, expiresAtMs: String(leg.expiresAtMs) };
  return { ...leg };
}

const isLegId = (value: unknown): value is string => isStorableText(value, 1, ID_CHARS_MAX);

export function parseHoldLeg(rawKey: Buffer | null, value: Buffer): HoldLeg | { error: string } {
  if (!isUtf8(value)) return { error: 'internal hold leg is not valid UTF-8' };
  let raw: Record<string, unknown>;
  try {
    const json: unknown = JSON.parse(value.toString('utf8'));
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      return { error: 'internal hold leg is not a JSON object' };
    raw = json as Record<string, unknown>;
  } catch (error) {
    return { error: `internal hold leg is not JSON: ${(error as Error).message}` };
  }
  const parsed = parseFields(raw);
  if ('error' in parsed) return parsed;
  const key = keyText(rawKey);
  if (key !== holdLegKey(parsed))
    return { error: `${parsed.leg} leg: its key is not ${JSON.stringify(holdLegKey(parsed))}` };
  return parsed;
}

function parseFields(raw: Record<string, unknown>): HoldLeg | { error: string } {
  const { leg, holdId, from, to } = raw;
  if (!isLegId(from)) return { error: 'internal hold leg has no usable from' };
  if (leg === 'hold_route') {
    const { command, timestamp } = raw;
    const ms = typeof timestamp === 'string' && /^-?\d{1,16}$/.test(timestamp) ? Number(timestamp) : Number.NaN;
    if (typeof command !== 'string' || command.length > ROUTED_COMMAND_CHARS_MAX || !Number.isSafeInteger(ms))
      return { error: 'hold_route leg: bad command or timestamp' };
    return { leg, from, command, timestamp: ms };
  }
  if (!isLegId(holdId)) return { error: 'internal hold leg has no usable holdId' };
  if (leg === 'hold_accepted' || leg === 'hold_settle') return { leg, holdId, from };
  if (leg === 'hold_expire') {
    const { expiresAtMs } = raw;
    const ms = typeof expiresAtMs === 'string' && /^\d{1,16}$/.test(expiresAtMs) ? Number(expiresAtMs) : Number.NaN;
    if (!Number.isSafeInteger(ms)) return { error: `hold_expire leg ${holdId}: bad expiresAtMs` };
    return { leg, holdId, from, expiresAtMs: ms };
  }
  if (leg === 'hold_refused') {
    const { code, reason } = raw;
    if (typeof code !== 'string' || !REFUSAL_CODES.has(code) || !isStorableText(reason, 0, REASON_CHARS_MAX))
      return { error: `hold_refused leg ${holdId}: bad code or reason` };
    return { leg, holdId, from, code: code as TransferFailureCode, reason };
  }
  if (!isLegId(to)) return { error: `${String(leg)} leg ${holdId}: no usable to` };
  if (leg === 'hold_release') return { leg, holdId, from, to };
  if (leg !== 'hold_credit' && leg !== 'hold_post')
    return { error: `unknown internal hold leg ${JSON.stringify(leg) ?? 'undefined'}` };
  const { amount, currency } = raw;
  const digits = typeof currency === 'string' ? currencyDigits(currency) : undefined;
  const money = digits !== undefined && typeof amount === 'string' ? parseMoney(amount, digits) : undefined;
  if (!money?.ok) return { error: `${leg} leg ${holdId}: bad amount or currency` };
  return { leg, holdId, from, to, amount: money.minor, currency: currency as string };
}
