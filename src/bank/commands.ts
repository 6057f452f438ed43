// Step 1 of a command's path: bytes from `transaction_initiated` → a validated command, or a classified refusal.
// Refusals are sorted by what can be answered (see README-BANK.md, "Bad input"):
// - nothing identifies the command (not JSON, not an object, unknown type, no id) → dead letter;
// - a money command with a transferId but bad fields → a `transaction_failed` outcome (malformed / invalid_amount);
// - an account command with an accountId but bad fields → an audit `account_command_rejected` (malformed).
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { currencyDigits, formatMoney, type MoneyError, parseMoney } from './money.ts';

export type MoneyCommandType = 'deposit' | 'withdrawal' | 'transfer';
export type AccountCommandType = 'open_account' | 'close_account';
export type CommandType = MoneyCommandType | AccountCommandType;

export interface OpenAccount {
  readonly type: 'open_account';
  readonly accountId: string;
  readonly ownerId: string;
  readonly currency: string;
  /** Minor units, >= 0: how far below zero the balance may go. */
  readonly overdraftLimit: bigint;
  readonly requestedAt: string;
}

export interface CloseAccount {
  readonly type: 'close_account';
  readonly accountId: string;
  readonly requestedAt: string;
}

/** A deposit or withdrawal: external money entering or leaving one account, in one step. */
export interface SingleLegCommand {
  readonly type: 'deposit' | 'withdrawal';
  readonly transferId: string;
  readonly accountId: string;
  /** Minor units, > 0. */
  readonly amount: bigint;
  readonly currency: string;
  readonly requestedAt: string;
  readonly fingerprint: string;
}

export interface TransferCommand {
  readonly type: 'transfer';
  readonly transferId: string;
  readonly from: string;
  readonly to: string;
  /** Minor units, > 0. */
  readonly amount: bigint;
  readonly currency: string;
  readonly reference: string | undefined;
  readonly requestedAt: string;
  readonly fingerprint: string;
}

export type MoneyCommand = SingleLegCommand | TransferCommand;
export type Command = OpenAccount | CloseAccount | MoneyCommand;

/** The fields of a money command echoed in its outcome; in a rejection only the fields that were valid. */
export interface TransferFields {
  transferId: string;
  type: MoneyCommandType;
  accountId?: string;
  from?: string;
  to?: string;
  /** A decimal string: with exactly the currency's digits when valid, as sent when it was a well-formed invalid amount. */
  amount?: string;
  currency?: string;
  reference?: string;
  requestedAt: string;
}

export type MoneyRejectionCode = 'malformed' | 'invalid_amount';

export type ParsedCommand =
  | { readonly kind: 'command'; readonly command: Command }
  | {
      readonly kind: 'money_rejected';
      readonly fields: TransferFields;
      readonly code: MoneyRejectionCode;
      readonly reason: string;
      readonly fingerprint: string;
    }
  | {
      readonly kind: 'account_rejected';
      readonly type: AccountCommandType;
      readonly accountId: string;
      readonly reason: string;
    }
  | { readonly kind: 'dead_letter'; readonly error: string };

/**
 * Identifiers (account, owner, transfer ids) are non-empty strings of at most this many UTF-16 code units
 * (JavaScript's `length`; a character outside the BMP counts 2), so at most 768 UTF-8 bytes: far below
 * Postgres' btree entry limit (2,704 bytes) even for a two-id index entry.
 */
export const ID_CHARS_MAX = 256;
/** `reference`, free text: at most this many UTF-16 code units (768 UTF-8 bytes). */
export const REFERENCE_CHARS_MAX = 256;
/** The record key is compared with an id, so a longer one can only be wrong; longer keys are described, not quoted. */
const KEY_QUOTED_BYTES_MAX = 64;
const AMOUNT_ECHO_CHARS_MAX = 64;
// Fingerprints longer than this (only possible for malformed commands carrying big values) are hashed.
const FINGERPRINT_CHARS_MAX = 1024;

const ID_RULE = `a string of 1 to ${ID_CHARS_MAX} characters, well-formed Unicode, without control or format characters`;

const MONEY_TYPES: ReadonlySet<string> = new Set(['deposit', 'withdrawal', 'transfer']);
const ACCOUNT_TYPES: ReadonlySet<string> = new Set(['open_account', 'close_account']);

type Json = Record<string, unknown>;

// The input rules (README-BANK.md, "Input rules"): what every later stage (store keys, Kafka keys and
// headers, outcome JSON, Postgres text and jsonb) can carry unchanged, decided here once.
// - Every string must be well-formed UTF-16 (no lone surrogate, \p{Cs}): UTF-8 has no encoding for one,
//   so it would become U+FFFD on the way to a store key or to Postgres, which refuses it in text/jsonb.
// - Ids refuse control characters (\p{Cc}: C0, DEL, C1, NUL included), format characters (\p{Cf}: bidi
//   overrides, zero-width characters, BOM, soft hyphen) and line/paragraph separators (\p{Zl}, \p{Zp}):
//   an id is compared byte for byte, so it must not hide characters that print as nothing.
// - Free text (reference) refuses control characters (one line of text; Postgres refuses NUL) but keeps
//   format characters: right-to-left text needs its bidi marks.
const ID_FORBIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const TEXT_FORBIDDEN = /[\p{Cc}\p{Cs}]/u;

/** An identifier: 1 to ID_CHARS_MAX code units, well-formed, without control, format or separator characters. */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= ID_CHARS_MAX && !ID_FORBIDDEN.test(value);
}

const UNSTORABLE = /[\u0000\p{Cs}]/u;

/**
 * What Postgres text and a store key can hold: well-formed, no NUL. Internal legs are checked with this
 * weaker rule, not the command rules: a leg written before the rules tightened (an id with a format
 * character, a reference with a TAB) must still settle or refund its money, not strand it in flight.
 */
export function isStorableText(value: unknown, charsMin: number, charsMax: number): value is string {
  return typeof value === 'string' && value.length >= charsMin && value.length <= charsMax && !UNSTORABLE.test(value);
}

/** Free text: at most `charsMax` code units, well-formed, without control characters (NUL included). */
export function isFreeText(value: unknown, charsMax: number): value is string {
  return typeof value === 'string' && value.length <= charsMax && !TEXT_FORBIDDEN.test(value);
}

/**
 * The record key as text: undefined when its bytes are not valid UTF-8. Decoding with replacement would
 * let two different keys (the bytes the partitioner hashed, and an id containing U+FFFD) compare equal.
 */
export function keyText(key: Buffer | string | null): string | null | undefined {
  if (key === null || typeof key === 'string') return key;
  return isUtf8(key) ? key.toString('utf8') : undefined;
}

/**
 * Parses one command record. `key` is the record key, bytes or text (null when absent); `timestampMs`
 * stands in for a missing `requestedAt` and must be a valid epoch time (see TIMESTAMP_MS_MIN/MAX).
 */
export function parseCommand(rawKey: Buffer | string | null, value: Buffer | null, timestampMs: number): ParsedCommand {
  if (value === null) return deadLetter('record value is null');
  // RFC 8259: JSON exchanged between systems is UTF-8. Replacing bad bytes with U+FFFD would accept a
  // command that is not the one sent (and a leading BOM is not JSON either: JSON.parse refuses it).
  if (!isUtf8(value)) return deadLetter('value is not valid UTF-8');
  const key = keyText(rawKey);
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch (error) {
    return deadLetter(`value is not JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return deadLetter('value is not a JSON object');
  const raw = json as Json;
  const type = raw['type'];
  if (typeof type !== 'string' || !(MONEY_TYPES.has(type) || ACCOUNT_TYPES.has(type))) {
    return deadLetter(`unknown command type ${describe(type)}`);
  }
  const fallbackAt = new Date(timestampMs).toISOString();
  if (MONEY_TYPES.has(type)) {
    if (!isId(raw['transferId'])) return deadLetter(`${type} has no usable transferId (${ID_RULE})`);
    return parseMoneyCommand(type as MoneyCommandType, raw, key, fallbackAt);
  }
  if (!isId(raw['accountId'])) return deadLetter(`${type} has no usable accountId (${ID_RULE})`);
  return parseAccountCommand(type as AccountCommandType, raw, key, fallbackAt);
}

/** The outcome fields of a valid money command, amount formatted with exactly the currency's digits. */
export function transferFieldsOf(command: MoneyCommand): TransferFields {
  const fields: TransferFields = {
    transferId: command.transferId,
    type: command.type,
    amount: formatMoney(command.amount, currencyDigits(command.currency)!),
    currency: command.currency,
    requestedAt: command.requestedAt,
  };
  if (command.type !== 'transfer') fields.accountId = command.accountId;
  else {
    fields.from = command.from;
    fields.to = command.to;
    if (command.reference !== undefined) fields.reference = command.reference;
  }
  return fields;
}

function deadLetter(error: string): ParsedCommand {
  return { kind: 'dead_letter', error };
}

/** Collects the fields of a money command one check at a time; the first malformed field wins. */
function parseMoneyCommand(
  type: MoneyCommandType,
  raw: Json,
  key: string | null | undefined,
  fallbackAt: string,
): ParsedCommand {
  const fields: TransferFields = { transferId: raw['transferId'] as string, type, requestedAt: fallbackAt };
  const fingerprint = fingerprintOf(type, raw);
  const reject = (code: MoneyRejectionCode, reason: string): ParsedCommand => ({
    kind: 'money_rejected',
    fields,
    code,
    reason,
    fingerprint,
  });
  const requestedAt = parseRequestedAt(raw['requestedAt'], fallbackAt);
  if (requestedAt === undefined)
    return reject('malformed', 'requestedAt must be an ISO-8601 timestamp with a time zone');
  fields.requestedAt = requestedAt;
  const owner = type === 'transfer' ? 'from' : 'accountId';
  const accountError = checkAccountFields(type, raw, fields);
  if (accountError) return reject('malformed', accountError);
  const keyError = checkKey(key, owner, fields[owner]!);
  if (keyError) return reject('malformed', keyError);
  const currency = raw['currency'];
  const digits = typeof currency === 'string' ? currencyDigits(currency) : undefined;
  if (digits === undefined)
    return reject('malformed', `currency must be a known ISO 4217 code, got ${describe(currency)}`);
  fields.currency = currency as string;
  const amount = raw['amount'];
  if (typeof amount !== 'string')
    return reject('malformed', `amount must be a decimal string, got ${describe(amount)}`);
  const parsed = parseMoney(amount, digits);
  if (!parsed.ok) {
    if (parsed.error === 'syntax')
      return reject('malformed', `amount must be a decimal string, got ${describe(amount)}`);
    // Echo a well-formed amount (a valid NUMERIC for the sink) unless it is absurdly long.
    if (amount.length <= AMOUNT_ECHO_CHARS_MAX) fields.amount = amount;
    return reject('invalid_amount', amountReason(parsed.error, amount, currency as string, digits));
  }
  fields.amount = formatMoney(parsed.minor, digits);
  const base = {
    transferId: fields.transferId,
    amount: parsed.minor,
    currency: fields.currency,
    requestedAt,
    fingerprint,
  };
  if (type !== 'transfer') return { kind: 'command', command: { type, accountId: fields.accountId!, ...base } };
  return {
    kind: 'command',
    command: { type, from: fields.from!, to: fields.to!, reference: fields.reference, ...base },
  };
}

/** Checks accountId, or from/to/reference for a transfer, copying each valid one into `fields`. */
function checkAccountFields(type: MoneyCommandType, raw: Json, fields: TransferFields): string | undefined {
  if (type !== 'transfer') {
    if (!isId(raw['accountId'])) return `accountId must be ${ID_RULE}, got ${describe(raw['accountId'])}`;
    fields.accountId = raw['accountId'];
    return undefined;
  }
  if (!isId(raw['from'])) return `from must be ${ID_RULE}, got ${describe(raw['from'])}`;
  fields.from = raw['from'];
  if (!isId(raw['to'])) return `to must be ${ID_RULE}, got ${describe(raw['to'])}`;
  fields.to = raw['to'];
  const reference = raw['reference'];
  if (reference === undefined) return undefined;
  if (!isFreeText(reference, REFERENCE_CHARS_MAX)) {
    return `reference must be a string of at most ${REFERENCE_CHARS_MAX} characters, well-formed Unicode, without control characters`;
  }
  fields.reference = reference;
  return undefined;
}

function parseAccountCommand(
  type: AccountCommandType,
  raw: Json,
  key: string | null | undefined,
  fallbackAt: string,
): ParsedCommand {
  const accountId = raw['accountId'] as string;
  const reject = (reason: string): ParsedCommand => ({ kind: 'account_rejected', type, accountId, reason });
  const requestedAt = parseRequestedAt(raw['requestedAt'], fallbackAt);
  if (requestedAt === undefined) return reject('requestedAt must be an ISO-8601 timestamp with a time zone');
  const keyError = checkKey(key, 'accountId', accountId);
  if (keyError) return reject(keyError);
  if (type === 'close_account') return { kind: 'command', command: { type, accountId, requestedAt } };
  const ownerId = raw['ownerId'];
  if (!isId(ownerId)) return reject(`ownerId must be ${ID_RULE}, got ${describe(ownerId)}`);
  const currency = raw['currency'];
  const digits = typeof currency === 'string' ? currencyDigits(currency) : undefined;
  if (digits === undefined) return reject(`currency must be a known ISO 4217 code, got ${describe(currency)}`);
  let overdraftLimit = 0n;
  const limit = raw['overdraftLimit'];
  if (limit !== undefined) {
    const parsed = typeof limit === 'string' ? parseMoney(limit, digits, { allowZero: true }) : undefined;
    if (!parsed?.ok) {
      return reject(
        `overdraftLimit must be a non-negative decimal string with at most ${digits} decimals, got ${describe(limit)}`,
      );
    }
    overdraftLimit = parsed.minor;
  }
  return {
    kind: 'command',
    command: { type, accountId, ownerId, currency: currency as string, overdraftLimit, requestedAt },
  };
}

/** The record key must be the account the command acts on, so that the task owning it decides. */
function checkKey(key: string | null | undefined, field: string, accountId: string): string | undefined {
  if (key === null) return `record key is null; it must be the ${field} ${JSON.stringify(accountId)}`;
  if (key === undefined) return `record key is not valid UTF-8; it must be the ${field} ${JSON.stringify(accountId)}`;
  if (key !== accountId) {
    const shown = key.length > KEY_QUOTED_BYTES_MAX ? `of ${Buffer.byteLength(key)} bytes` : JSON.stringify(key);
    return `record key ${shown} differs from ${field} ${JSON.stringify(accountId)}`;
  }
  return undefined;
}

function amountReason(error: MoneyError, amount: string, currency: string, digits: number): string {
  if (error === 'negative') return `amount ${amount} is negative`;
  if (error === 'zero') return `amount ${amount} is zero`;
  if (error === 'precision') return `amount ${amount} has more than ${digits} decimals, the minor unit of ${currency}`;
  return `amount ${amount} is too large`;
}

/**
 * What makes two commands with one transferId "the same": the fields that define the operation,
 * as sent (raw JSON values, so a number and a string differ). requestedAt is left out on purpose:
 * a client retry, and a record timestamp, legitimately change it.
 */
function fingerprintOf(type: MoneyCommandType, raw: Json): string {
  const fields =
    type === 'transfer'
      ? [type, raw['from'], raw['to'], raw['amount'], raw['currency'], raw['reference']]
      : [type, raw['accountId'], raw['amount'], raw['currency']];
  const text = JSON.stringify(fields);
  if (text.length <= FINGERPRINT_CHARS_MAX) return text;
  return `sha256:${createHash('sha256').update(text).digest('base64')}`;
}

// YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM): RFC 3339, the profile of ISO 8601 that APIs exchange.
const ISO_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** `requestedAt` normalized to UTC ISO with milliseconds; the fallback when absent; undefined when invalid. */
function parseRequestedAt(value: unknown, fallbackAt: string): string | undefined {
  if (value === undefined) return fallbackAt;
  if (typeof value !== 'string') return undefined;
  const ms = parseIsoTimestamp(value);
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

/**
 * The instants every stage prints the same way: years 1000 to 9999 in UTC. Outside them toISOString()
 * writes a sign and six year digits ("+275760-09-13T…"), which the sink and most parsers refuse.
 */
export const TIMESTAMP_MS_MIN = Date.UTC(1000, 0, 1);
export const TIMESTAMP_MS_MAX = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * Epoch milliseconds of an RFC 3339 timestamp whose instant lies in years 1000–9999 UTC (the offset
 * applied), or undefined; sub-millisecond digits are dropped.
 */
export function parseIsoTimestamp(text: string): number | undefined {
  const m = ISO_TIMESTAMP.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = month === 2 && !leap ? 28 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (year < 1000 || month < 1 || month > 12 || day < 1 || day > days || hour > 23 || minute > 59 || second > 59)
    return undefined;
  const offsetHours = Number(m[9] ?? 0);
  const offsetMinutes = Number(m[10] ?? 0);
  if (offsetHours > 23 || offsetMinutes > 59) return undefined;
  const offsetMs = (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  const millis = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMs;
  return ms >= TIMESTAMP_MS_MIN && ms <= TIMESTAMP_MS_MAX ? ms : undefined;
}

/** A short, safe description of a bad value for a reason string. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string')
    return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `the JSON ${typeof value} ${String(value).slice(0, 40)}`;
}
