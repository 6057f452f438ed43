// The input rules of every field (README-BANK.md, "Input rules"): what every later stage (store keys,
// Kafka keys and headers, outcome JSON, Postgres text and jsonb) can carry unchanged. The command parser
// (commands.ts) applies them once, at the edge; the legs (legs.ts) and the HTTP API's validation use the
// same functions, so no stage has a rule of its own.
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { currencyDigits, formatMoney, type MoneyError, parseMoney } from './money.ts';

/**
 * Identifiers (account, owner, transfer ids) are non-empty strings of at most this many UTF-16 code units
 * (JavaScript's `length`; a character outside the BMP counts 2), so at most 768 UTF-8 bytes: far below
 * Postgres' btree entry limit (2,704 bytes) even for a two-id index entry.
 */
export const ID_CHARS_MAX = 256;
/** `reference`, free text: at most this many UTF-16 code units (768 UTF-8 bytes). */
export const REFERENCE_CHARS_MAX = 256;

// The character rules:
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

// YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM): RFC 3339, the profile of ISO 8601 that APIs exchange.
const ISO_TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days in `month` (1–12) of `year` in the proleptic Gregorian calendar (0 for a month outside 1–12). */
export function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && !leap ? 28 : (DAYS_IN_MONTH[month - 1] ?? 0);
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
  if (
    year < 1000 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  )
    return undefined;
  const offsetHours = Number(m[9] ?? 0);
  const offsetMinutes = Number(m[10] ?? 0);
  if (offsetHours > 23 || offsetMinutes > 59) return undefined;
  const offsetMs = (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  const millis = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMs;
  return ms >= TIMESTAMP_MS_MIN && ms <= TIMESTAMP_MS_MAX ? ms : undefined;
}

// What the command parsers (commands.ts, hold-commands.ts) say and keep of a refused field, alike.

/** The id rule in words, for refusal reasons. */
export const ID_RULE = `a string of 1 to ${ID_CHARS_MAX} characters, well-formed Unicode, without control or format characters`;

const KEY_QUOTED_CHARS_MAX = 64;
const FINGERPRINT_CHARS_MAX = 1024;

/** The record key must be the account the command acts on (`field`), so that the task owning it decides. */
export function checkRecordKey(key: string | null | undefined, field: string, accountId: string): string | undefined {
  if (key === null) return `record key is null; it must be the ${field} ${JSON.stringify(accountId)}`;
  if (key === undefined) return `record key is not valid UTF-8; it must be the ${field} ${JSON.stringify(accountId)}`;
  if (key !== accountId) {
    const shown = key.length > KEY_QUOTED_CHARS_MAX ? `of ${Buffer.byteLength(key)} bytes` : JSON.stringify(key);
    return `record key ${shown} differs from ${field} ${JSON.stringify(accountId)}`;
  }
  return undefined;
}

/** A fingerprint of the raw fields that define a command: their JSON, or its SHA-256 when that is long. */
export function fingerprintText(fields: readonly unknown[]): string {
  const text = JSON.stringify(fields);
  if (text.length <= FINGERPRINT_CHARS_MAX) return text;
  return `sha256:${createHash('sha256').update(text).digest('base64')}`;
}

/** A short, safe description of a bad value for a reason string. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string')
    return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `the JSON ${typeof value} ${String(value).slice(0, 40)}`;
}

const AMOUNT_ECHO_CHARS_MAX = 64;

/** A refused currency or amount: the outcome's code and reason. */
export interface AmountRefusal {
  readonly code: 'malformed' | 'invalid_amount';
  readonly reason: string;
}

/**
 * `currency` then `amount` of a money command, as both command parsers read them; the valid ones (and a
 * well-formed invalid amount, unless absurdly long) are copied into `echo` for the outcome.
 * `invalidReason` words a well-formed amount that is invalid (each parser has its own wording).
 */
export function readAmount(
  raw: Record<string, unknown>,
  echo: { currency?: string; amount?: string },
  invalidReason: (error: Exclude<MoneyError, 'syntax'>, amount: string, currency: string, digits: number) => string,
): { amount: bigint; currency: string } | AmountRefusal {
  const currency = raw['currency'];
  const digits = typeof currency === 'string' ? currencyDigits(currency) : undefined;
  if (digits === undefined)
    return { code: 'malformed', reason: `currency must be a known ISO 4217 code, got ${describe(currency)}` };
  echo.currency = currency as string;
  const amount = raw['amount'];
  if (typeof amount !== 'string')
    return { code: 'malformed', reason: `amount must be a decimal string, got ${describe(amount)}` };
  const parsed = parseMoney(amount, digits);
  if (!parsed.ok) {
    if (parsed.error === 'syntax')
      return { code: 'malformed', reason: `amount must be a decimal string, got ${describe(amount)}` };
    // Echo a well-formed amount (a valid NUMERIC for the sink) unless it is absurdly long.
    if (amount.length <= AMOUNT_ECHO_CHARS_MAX) echo.amount = amount;
    return { code: 'invalid_amount', reason: invalidReason(parsed.error, amount, currency as string, digits) };
  }
  echo.amount = formatMoney(parsed.minor, digits);
  return { amount: parsed.minor, currency: currency as string };
}
