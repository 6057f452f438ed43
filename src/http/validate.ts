// Input validation: a body reader that collects every field error before failing (one 422 naming all of
// them), and single-value checks for path, query and header parameters (400). Money is checked with the
// bank's own parser, so the API accepts exactly what the processor accepts, and normalized to the
// currency's digits so that retries formatted differently ("10" / "10.00") stay exact duplicates.
import { isFreeText, isId, parseIsoTimestamp, REFERENCE_CHARS_MAX } from '../bank/input-rules.ts';
import { currencyDigits, formatMoney, parseMoney } from '../bank/money.ts';
import { type FieldError, invalidParameter, validationFailed } from '../problems/errors.ts';
import type { JsonObject } from './body.ts';
import { PASSWORD_CHARS_MAX } from './passwords.ts';

export const ID_PATTERN_TEXT = 'a string of 1 to 256 characters';
const TOKEN_SAFE = /^[\x21-\x7e]{1,256}$/;

export class BodyReader {
  readonly #body: JsonObject;
  readonly #errors: FieldError[] = [];
  readonly #known = new Set<string>();

  constructor(body: JsonObject) {
    this.#body = body;
  }

  #take(field: string): unknown {
    this.#known.add(field);
    return Object.hasOwn(this.#body, field) ? this.#body[field] : undefined;
  }

  fail(field: string, message: string): void {
    this.#errors.push({ field, message });
  }

  /** An identifier: 1 to 256 characters of printable ASCII (ids travel in URLs and Kafka keys). */
  id(field: string): string | undefined;
  id(field: string, optional: true): string | undefined;
  id(field: string, optional = false): string | undefined {
    const value = this.#take(field);
    if (value === undefined && optional) return undefined;
    if (!isId(value) || !TOKEN_SAFE.test(value)) {
      this.fail(field, `must be ${ID_PATTERN_TEXT} of printable ASCII without spaces`);
      return undefined;
    }
    return value;
  }

  currency(field: string): string | undefined {
    const value = this.#take(field);
    if (typeof value !== 'string' || currencyDigits(value) === undefined) {
      this.fail(field, 'must be a supported ISO 4217 currency code, e.g. "EUR"');
      return undefined;
    }
    return value;
  }

  /** A positive amount (or non-negative with allowZero) in the currency's digits, returned normalized. */
  money(
    field: string,
    currency: string | undefined,
    options: { optional?: boolean; allowZero?: boolean } = {},
  ): string | undefined {
    const value = this.#take(field);
    if (value === undefined && options.optional) return undefined;
    if (typeof value !== 'string') {
      this.fail(field, 'must be a decimal string such as "12.50" (never a JSON number)');
      return undefined;
    }
    if (currency === undefined) return undefined;
    const digits = currencyDigits(currency)!;
    const parsed = parseMoney(value, digits, { allowZero: options.allowZero ?? false });
    if (!parsed.ok) {
      this.fail(field, moneyMessage(parsed.error, digits, options.allowZero ?? false));
      return undefined;
    }
    return formatMoney(parsed.minor, digits);
  }

  /** Refuses a field that must not be sent here (it is not also reported as unknown). */
  refuse(field: string, message: string): void {
    this.#known.add(field);
    this.fail(field, message);
  }

  /** Whether the body has the field (without reading it). */
  has(field: string): boolean {
    return Object.hasOwn(this.#body, field);
  }

  /** A JSON integer (never a string, never a fraction) within [min, max]. */
  integer(field: string, min: number, max: number): number | undefined {
    const value = this.#take(field);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      this.fail(field, `must be a JSON integer from ${min} to ${max}`);
      return undefined;
    }
    return value;
  }

  /** An RFC 3339 timestamp with a zone (the processor's requestedAt rule), returned as epoch ms. */
  timestamp(field: string): number | undefined {
    const value = this.#take(field);
    const ms = typeof value === 'string' && value.length <= 64 ? parseIsoTimestamp(value) : undefined;
    if (ms === undefined) {
      this.fail(field, 'must be an RFC 3339 timestamp with a time zone, e.g. "2026-03-01T12:00:00Z"');
      return undefined;
    }
    return ms;
  }

  /** A password: any string within bounds (never echoed in errors). */
  password(field: string): string | undefined {
    const value = this.#take(field);
    if (typeof value !== 'string' || value.length === 0 || value.length > PASSWORD_CHARS_MAX) {
      this.fail(field, `must be a string of 1 to ${PASSWORD_CHARS_MAX} characters`);
      return undefined;
    }
    return value;
  }

  reference(field: string): string | undefined {
    const value = this.#take(field);
    if (value === undefined) return undefined;
    // The processor's rule (README-BANK "Input rules"), so the API refuses what the processor would answer malformed.
    if (!isFreeText(value, REFERENCE_CHARS_MAX)) {
      this.fail(
        field,
        `must be a string of at most ${REFERENCE_CHARS_MAX} characters, well-formed Unicode, without control characters`,
      );
      return undefined;
    }
    return value;
  }

  /** Throws one 422 listing every problem, unknown fields included (a typo must not pass silently). */
  done(): void {
    for (const field of Object.keys(this.#body)) {
      if (!this.#known.has(field)) this.fail(field, 'is not a known field');
    }
    if (this.#errors.length > 0) throw validationFailed(this.#errors);
  }
}

function moneyMessage(error: string, digits: number, allowZero: boolean): string {
  if (error === 'syntax')
    return 'must be a decimal string such as "12.50": digits, an optional "." and fraction, no sign or exponent';
  if (error === 'negative' || error === 'zero') return allowZero ? 'must not be negative' : 'must be greater than zero';
  if (error === 'precision') return `must have at most ${digits} decimal places for this currency`;
  return 'is too large';
}

/** A path parameter that must be an identifier. */
export function idParam(name: string, value: string | undefined): string {
  if (value === undefined || !isId(value) || !TOKEN_SAFE.test(value))
    throw invalidParameter(name, `must be ${ID_PATTERN_TEXT} of printable ASCII without spaces`);
  return value;
}

/** An optional integer query parameter within [min, max]. */
export function intQuery(
  query: Record<string, string | string[] | undefined>,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const raw = query[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !/^\d{1,9}$/.test(raw))
    throw invalidParameter(`query.${name}`, `must be an integer between ${min} and ${max}`);
  const value = Number(raw);
  if (value < min || value > max)
    throw invalidParameter(`query.${name}`, `must be an integer between ${min} and ${max}`);
  return value;
}

export function stringQuery(
  query: Record<string, string | string[] | undefined>,
  name: string,
  maxChars: number,
): string | undefined {
  const raw = query[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > maxChars)
    throw invalidParameter(`query.${name}`, `must be one non-empty value of at most ${maxChars} characters`);
  return raw;
}

/** An optional boolean query parameter: `true` or `false`, nothing else. */
export function boolQuery(query: Record<string, string | string[] | undefined>, name: string): boolean | undefined {
  const raw = query[name];
  if (raw === undefined) return undefined;
  if (raw !== 'true' && raw !== 'false') throw invalidParameter(`query.${name}`, 'must be true or false');
  return raw === 'true';
}

/** The Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header): same rules as a transferId. */
export function idempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (typeof header !== 'string' || !isId(header) || !TOKEN_SAFE.test(header)) {
    throw invalidParameter('header.Idempotency-Key', `must be ${ID_PATTERN_TEXT} of printable ASCII without spaces`);
  }
  return header;
}
