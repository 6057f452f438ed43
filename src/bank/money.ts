// Money: ISO 4217 currencies, and exact conversion between wire decimal strings and bigint minor units.
// Money is never a JS number anywhere in the bank: a float cannot hold 0.10 exactly, and a double
// loses whole units above 2^53 minor units.

/** ISO 4217 code → number of minor-unit digits (EUR 2: cents; JPY 0; KWD 3: fils). */
export const CURRENCY_DIGITS: ReadonlyMap<string, number> = new Map<string, number>([
  // Zero-decimal currencies.
  ['JPY', 0],
  ['KRW', 0],
  ['ISK', 0],
  ['CLP', 0],
  ['VND', 0],
  ['PYG', 0],
  ['UGX', 0],
  ['XAF', 0],
  ['XOF', 0],
  // Three-decimal currencies.
  ['KWD', 3],
  ['BHD', 3],
  ['OMR', 3],
  ['JOD', 3],
  ['TND', 3],
  ['LYD', 3],
  ['IQD', 3],
  // Two-decimal currencies.
  ['EUR', 2],
  ['USD', 2],
  ['GBP', 2],
  ['CHF', 2],
  ['SEK', 2],
  ['NOK', 2],
  ['DKK', 2],
  ['PLN', 2],
  ['CZK', 2],
  ['HUF', 2],
  ['RON', 2],
  ['BGN', 2],
  ['CAD', 2],
  ['AUD', 2],
  ['NZD', 2],
  ['SGD', 2],
  ['HKD', 2],
  ['CNY', 2],
  ['TWD', 2],
  ['INR', 2],
  ['IDR', 2],
  ['MYR', 2],
  ['THB', 2],
  ['PHP', 2],
  ['BRL', 2],
  ['MXN', 2],
  ['ARS', 2],
  ['COP', 2],
  ['PEN', 2],
  ['ZAR', 2],
  ['EGP', 2],
  ['MAD', 2],
  ['NGN', 2],
  ['KES', 2],
  ['TRY', 2],
  ['ILS', 2],
  ['AED', 2],
  ['SAR', 2],
  ['QAR', 2],
  ['UAH', 2],
  ['RSD', 2],
  ['GEL', 2],
  ['KZT', 2],
  ['PKR', 2],
  ['BDT', 2],
  ['LKR', 2],
]);

/** At most 18 integer digits: far above any real balance, and it keeps every value a NUMERIC(38, 3). */
export const INTEGER_DIGITS_MAX = 18;

export function currencyDigits(code: string): number | undefined {
  return CURRENCY_DIGITS.get(code);
}

/** Why a decimal string was refused: `syntax` is not a decimal at all, the others are well-formed decimals out of range. */
export type MoneyError = 'syntax' | 'negative' | 'zero' | 'precision' | 'range';

export type MoneyParse = { ok: true; minor: bigint } | { ok: false; error: MoneyError };

export interface ParseMoneyOptions {
  /** Allow zero (overdraft limits) rather than refusing it (amounts). Default false. */
  allowZero?: boolean;
}

// An optional minus (so that "-5.00" is a well-formed but negative amount, not garbage), then
// digits without leading zeros, then an optional fraction. No '+', no exponent, no spaces.
const DECIMAL = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;
// Longer strings are never valid; refusing them first bounds the regex and BigInt work.
const DECIMAL_CHARS_MAX = 64;

/**
 * Parses a wire decimal string ("125.50") into minor units of a currency with `digits` minor-unit
 * digits (12550n). Fewer fraction digits than the currency has are fine ("125.5"); more are not,
 * even trailing zeros ("125.500" in EUR), because the wire contract is "at most the currency's digits".
 */
export function parseMoney(text: string, digits: number, options: ParseMoneyOptions = {}): MoneyParse {
  if (text.length > DECIMAL_CHARS_MAX) {
    return { ok: false, error: /^-?[0-9]+(\.[0-9]+)?$/.test(text) ? 'range' : 'syntax' };
  }
  const match = DECIMAL.exec(text);
  if (!match) return { ok: false, error: 'syntax' };
  const [, sign, integer = '', fraction = ''] = match;
  if (sign === '-') return { ok: false, error: 'negative' };
  // The digits as one integer: exact minor units when the fraction fits the currency.
  const minor = BigInt(integer + fraction.padEnd(digits, '0'));
  if (minor === 0n && options.allowZero !== true) return { ok: false, error: 'zero' };
  if (fraction.length > digits) return { ok: false, error: 'precision' };
  if (integer.length > INTEGER_DIGITS_MAX) return { ok: false, error: 'range' };
  return { ok: true, minor };
}

/** Formats minor units with exactly the currency's digits: (12550n, 2) → "125.50", (-5n, 2) → "-0.05", (7n, 0) → "7". */
export function formatMoney(minor: bigint, digits: number): string {
  const negative = minor < 0n;
  const text = (negative ? -minor : minor).toString();
  if (digits === 0) return negative ? `-${text}` : text;
  const padded = text.padStart(digits + 1, '0');
  const integer = padded.slice(0, padded.length - digits);
  const fraction = padded.slice(padded.length - digits);
  return `${negative ? '-' : ''}${integer}.${fraction}`;
}
