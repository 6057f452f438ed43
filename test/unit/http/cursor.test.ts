import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../../src/problems/errors.ts';
import { decodeCursor, encodeCursor } from '../../../src/http/history.ts';
import { dateish } from '../../fixtures/dateish.ts';

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value), 'utf8').toString('base64url');

/** Decodes, or returns the ApiError's code; any other throw fails the property. */
type Decoded = { at: string; transferId: string; rowId: string };

function outcome(cursor: string): Decoded | string {
  try {
    return decodeCursor(cursor);
  } catch (error) {
    if (error instanceof ApiError) return error.code;
    throw error;
  }
}

function expectAcceptable(decoded: Decoded): void {
  const ms = Date.parse(decoded.at);
  expect(Number.isNaN(ms)).toBe(false);
  // The instant is real: printed back it is the same calendar date and time (no Feb 30 rolled into March).
  expect(new Date(ms).toISOString().slice(0, 19)).toBe(decoded.at.slice(0, 19));
  expect(decoded.at.startsWith('0000')).toBe(false);
  expect(decoded.transferId.isWellFormed()).toBe(true);
  expect(decoded.transferId.includes('\u0000')).toBe(false);
  expect(BigInt(decoded.rowId) <= 9223372036854775807n).toBe(true);
}

describe('history cursor decoding', () => {
  it('should round-trip a cursor when it was encoded by the endpoint', () => {
    expect(decodeCursor(encodeCursor('2026-12-01T21:50:26.123456Z', 't-1', '42'))).toEqual({
      at: '2026-12-01T21:50:26.123456Z',
      transferId: 't-1',
      rowId: '42',
    });
    // A two-part cursor of an earlier version is still taken (it resumes below every row id).
    expect(decodeCursor(b64(['2026-12-01T21:50:26.123456Z', 't-1']))).toEqual({
      at: '2026-12-01T21:50:26.123456Z',
      transferId: 't-1',
      rowId: '0',
    });
  });

  it('should refuse as invalid_parameter when the cursor has NUL, an impossible date or year 0', () => {
    for (const cursor of [
      encodeCursor('2026-12-01T21:50:26.123456Z', 't-\u0000', '1'),
      encodeCursor('2026-02-30T00:00:00.000000Z', 't-1', '1'),
      encodeCursor('2025-02-29T00:00:00.000000Z', 't-1', '1'),
      encodeCursor('0000-01-01T00:00:00.000000Z', 't-1', '1'),
      encodeCursor('2026-01-01T24:00:00.000000Z', 't-1', '1'),
      encodeCursor('2026-01-01T23:59:60.000000Z', 't-1', '1'),
      b64('["2026-01-01T00:00:00.000000Z","t-\\ud800"]'),
      b64(['2026-01-01T00:00:00.000000Z', 't-1', 'extra']),
      b64(['2026-01-01T00:00:00.000000Z', 't-1', '9223372036854775808']),
      b64(['2026-01-01T00:00:00.000000Z', 't-1', '1', '2']),
      b64({ at: '2026-01-01T00:00:00.000000Z', id: 't' }),
      'bogus!',
      '',
    ]) {
      expect(outcome(cursor), cursor).toBe('invalid_parameter');
    }
    expect(outcome(encodeCursor('2024-02-29T23:59:59.999999Z', 't-1', '7'))).toEqual({
      at: '2024-02-29T23:59:59.999999Z',
      transferId: 't-1',
      rowId: '7',
    });
  });

  it('should give a valid cursor or a 400 and never another error when the cursor is any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 700 }), (cursor) => {
        const result = outcome(cursor);
        if (typeof result === 'string') expect(result).toBe('invalid_parameter');
        else expectAcceptable(result);
      }),
      { numRuns: 3000 },
    );
  });

  it('should give a valid cursor or a 400 when the cursor is base64 of arbitrary JSON and date-like strings', () => {
    const payload = fc.oneof(
      fc.tuple(dateish, fc.string({ unit: 'binary', maxLength: 300 })).map((pair) => b64(pair)),
      fc.json({ maxDepth: 3 }).map((text) => b64(text)),
      fc.string({ unit: 'binary', maxLength: 400 }).map((text) => b64(text)),
    );
    fc.assert(
      fc.property(payload, (cursor) => {
        const result = outcome(cursor);
        if (typeof result === 'string') expect(result).toBe('invalid_parameter');
        else expectAcceptable(result);
      }),
      { numRuns: 3000 },
    );
  });
});
