// The fetched records' header objects (src/kafka/fetcher.ts, toHeaders): the same names and values as a
// null-prototype object built the obvious way, whatever the names (`__proto__`, inherited method names,
// numbers, any Unicode, repeats, the name cache reused across records), with nothing inherited.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHeaders } from '../../../src/kafka/fetcher.ts';

function reference(entries: Array<[Buffer | null, Buffer | null]>): Record<string, Buffer> {
  const headers = Object.create(null) as Record<string, Buffer>;
  for (const [k, v] of entries) if (k) headers[k.toString('utf8')] = v ?? Buffer.alloc(0);
  return headers;
}

const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '0', '17', 'bankstream-mac', ''];
const name = fc.oneof(fc.constantFrom(...NAMES), fc.string({ unit: 'binary', maxLength: 12 }));
const entry = fc.tuple(
  fc.option(
    name.map((n) => Buffer.from(n, 'utf8')),
    { nil: null, freq: 8 },
  ),
  fc.option(
    fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)),
    { nil: null, freq: 8 },
  ),
);

describe('fetched record headers', () => {
  it('should hold exactly the names and values of the header list, the last of a repeated name winning, with nothing inherited', () => {
    fc.assert(
      fc.property(fc.array(fc.array(entry, { maxLength: 5 }), { minLength: 1, maxLength: 6 }), (records) => {
        // Several records in a row: the decoded-name cache carries over from one to the next.
        for (const entries of records) {
          const headers = toHeaders(entries);
          const expected = reference(entries);
          expect(Object.entries(headers)).toEqual(Object.entries(expected));
          for (const n of NAMES) {
            expect(n in headers, n).toBe(n in expected);
            expect(headers[n], n).toEqual(expected[n]);
          }
          expect(Object.prototype.isPrototypeOf.call(Object.prototype, headers)).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('should keep a header named __proto__ as a header, not as the prototype', () => {
    const value = Buffer.from('x');
    const proto = '__proto__';
    const headers = toHeaders([[Buffer.from(proto), value]]);
    expect(Object.keys(headers)).toEqual([proto]);
    expect(headers[proto]).toBe(value);
    expect(Object.getPrototypeOf(Object.getPrototypeOf(headers))).toBe(null);
  });

  it('should not reuse a cached name for a different name of the same length', () => {
    const a = toHeaders([[Buffer.from('mac-a'), Buffer.from('1')]]);
    const b = toHeaders([[Buffer.from('mac-b'), Buffer.from('2')]]);
    expect([Object.keys(a), Object.keys(b)]).toEqual([['mac-a'], ['mac-b']]);
  });
});
