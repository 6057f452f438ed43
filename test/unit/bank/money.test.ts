import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { CURRENCY_DIGITS, currencyDigits, formatMoney, parseMoney } from '../../../src/bank/money.ts';

describe('currency table', () => {
  test('should give the ISO 4217 minor-unit digits when asked for common currencies', () => {
    expect(currencyDigits('EUR')).toBe(2);
    expect(currencyDigits('USD')).toBe(2);
    expect(currencyDigits('JPY')).toBe(0);
    expect(currencyDigits('KWD')).toBe(3);
    expect(currencyDigits('BHD')).toBe(3);
    for (const code of [
      'GBP',
      'CHF',
      'SEK',
      'NOK',
      'DKK',
      'PLN',
      'CZK',
      'HUF',
      'CAD',
      'AUD',
      'NZD',
      'SGD',
      'HKD',
      'CNY',
      'INR',
      'BRL',
      'MXN',
      'ZAR',
    ]) {
      expect(currencyDigits(code)).toBe(2);
    }
  });

  test('should know nothing when the code is unknown or not upper case', () => {
    expect(currencyDigits('XXX1')).toBeUndefined();
    expect(currencyDigits('eur')).toBeUndefined();
    expect(currencyDigits('')).toBeUndefined();
  });

  test('should hold only three-letter codes with 0 to 3 digits when listed', () => {
    for (const [code, digits] of CURRENCY_DIGITS) {
      expect(code).toMatch(/^[A-Z]{3}$/);
      expect([0, 2, 3]).toContain(digits);
    }
  });
});

describe('parseMoney', () => {
  test('should give exact minor units when the string has at most the currency digits', () => {
    expect(parseMoney('125.50', 2)).toEqual({ ok: true, minor: 12550n });
    expect(parseMoney('125.5', 2)).toEqual({ ok: true, minor: 12550n });
    expect(parseMoney('125', 2)).toEqual({ ok: true, minor: 12500n });
    expect(parseMoney('0.01', 2)).toEqual({ ok: true, minor: 1n });
    expect(parseMoney('1000', 0)).toEqual({ ok: true, minor: 1000n });
    expect(parseMoney('1.234', 3)).toEqual({ ok: true, minor: 1234n });
    expect(parseMoney('999999999999999999.99', 2)).toEqual({ ok: true, minor: 99999999999999999999n });
  });

  test('should refuse as syntax when the string is not a plain decimal', () => {
    for (const text of [
      '',
      'abc',
      '1e5',
      '1E5',
      '+5',
      ' 5',
      '5 ',
      '1.',
      '.5',
      '1,00',
      '0x10',
      '01',
      '00.5',
      '--1',
      '1.2.3',
      'NaN',
      'Infinity',
      '١٢',
    ]) {
      expect(parseMoney(text, 2), text).toEqual({ ok: false, error: 'syntax' });
    }
  });

  test('should refuse as negative when a well-formed amount has a minus sign', () => {
    expect(parseMoney('-5.00', 2)).toEqual({ ok: false, error: 'negative' });
    expect(parseMoney('-0', 2)).toEqual({ ok: false, error: 'negative' });
    expect(parseMoney('-1', 2, { allowZero: true })).toEqual({ ok: false, error: 'negative' });
  });

  test('should refuse zero when zero is not allowed and accept it when it is', () => {
    expect(parseMoney('0', 2)).toEqual({ ok: false, error: 'zero' });
    expect(parseMoney('0.00', 2)).toEqual({ ok: false, error: 'zero' });
    expect(parseMoney('0.00', 2, { allowZero: true })).toEqual({ ok: true, minor: 0n });
  });

  test('should refuse as precision when there are more fraction digits than the currency has', () => {
    expect(parseMoney('1.001', 2)).toEqual({ ok: false, error: 'precision' });
    expect(parseMoney('1.500', 2)).toEqual({ ok: false, error: 'precision' });
    expect(parseMoney('100.0', 0)).toEqual({ ok: false, error: 'precision' });
    expect(parseMoney('1.0001', 3)).toEqual({ ok: false, error: 'precision' });
  });

  test('should refuse as range when there are more than 18 integer digits', () => {
    expect(parseMoney('1000000000000000000', 2)).toEqual({ ok: false, error: 'range' });
    expect(parseMoney('9'.repeat(100), 2)).toEqual({ ok: false, error: 'range' });
    expect(parseMoney('9'.repeat(100) + 'x', 2)).toEqual({ ok: false, error: 'syntax' });
  });
});

describe('formatMoney', () => {
  test('should print exactly the currency digits when formatting', () => {
    expect(formatMoney(12550n, 2)).toBe('125.50');
    expect(formatMoney(5n, 2)).toBe('0.05');
    expect(formatMoney(0n, 2)).toBe('0.00');
    expect(formatMoney(-5n, 2)).toBe('-0.05');
    expect(formatMoney(-12345n, 2)).toBe('-123.45');
    expect(formatMoney(7n, 0)).toBe('7');
    expect(formatMoney(-7n, 0)).toBe('-7');
    expect(formatMoney(1n, 3)).toBe('0.001');
  });

  test('should round-trip when any valid amount is formatted and parsed back', () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(0, 2, 3)
          .chain((digits) =>
            fc.tuple(fc.bigInt({ min: 1n, max: 10n ** BigInt(18 + digits) - 1n }), fc.constant(digits)),
          ),
        ([minor, digits]) => {
          const text = formatMoney(minor, digits);
          expect(parseMoney(text, digits)).toEqual({ ok: true, minor });
        },
      ),
    );
  });
});
