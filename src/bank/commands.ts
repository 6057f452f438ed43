// Parsing, called by step 2 (processor.ts): bytes from `transaction_initiated` → a validated command, or a
// classified refusal. The rule of each field is in input-rules.ts.
// Refusals are sorted by what can be answered (see README-BANK.md, "Bad input"):
// - nothing identifies the command (not JSON, not an object, unknown type, no id) → dead letter;
// - a money command with a transferId but bad fields → a `transaction_failed` outcome (malformed / invalid_amount);
// - an account command with an accountId but bad fields → an audit `account_command_rejected` (malformed).
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

/** What moves money from one account to another: a transfer's, a hold's and a credit leg's terms. */
export interface TransferTerms {
  readonly transferId: string;
  readonly from: string;
  readonly to: string;
  /** Minor units, > 0. */
  readonly amount: bigint;
  readonly currency: string;
  readonly reference: string | undefined;
  readonly requestedAt: string;
}

export interface TransferCommand extends TransferTerms {
  readonly type: 'transfer';
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

/** The record key is compared with an id, so a longer one can only be wrong; longer keys are described, not quoted. */
// Fingerprints longer than this (only possible for malformed commands carrying big values) are hashed.

const MONEY_TYPES: ReadonlySet<string> = new Set(['deposit', 'withdrawal', 'transfer']);
const ACCOUNT_TYPES: ReadonlySet<string> = new Set(['open_account', 'close_account']);

type Json = Record<string, unknown>;

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
  const keyError = checkRecordKey(key, owner, fields[owner]!);
  if (keyError) return reject('malformed', keyError);
  const money = readAmount(raw, fields, amountReason);
  if ('code' in money) return reject(money.code, money.reason);
  const base = {
    transferId: fields.transferId,
    amount: money.amount,
    currency: money.currency,
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
  const keyError = checkRecordKey(key, 'accountId', accountId);
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
  return fingerprintText(fields);
}

/** `requestedAt` normalized to UTC ISO with milliseconds; the fallback when absent; undefined when invalid. */
function parseRequestedAt(value: unknown, fallbackAt: string): string | undefined {
  if (value === undefined) return fallbackAt;
  if (typeof value !== 'string') return undefined;
  const ms = parseIsoTimestamp(value);
  return ms === undefined ? undefined : new Date(ms).toISOString();
}
