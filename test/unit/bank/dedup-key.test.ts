import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { dedupKey, transferIdOfDedupKey } from '../../../src/bank/stores.ts';

const id = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' });

describe('dedupKey', () => {
  test('should give two (account, transferId) pairs two keys when they differ, whatever characters the ids hold', () => {
    fc.assert(
      fc.property(id, id, id, id, (a1, t1, a2, t2) => {
        fc.pre(a1 !== a2 || t1 !== t2);
        expect(dedupKey(a1, t1)).not.toBe(dedupKey(a2, t2));
      }),
      { numRuns: 2000 },
    );
  });

  test('should never equal a bare transferId (the legacy key) when the ids hold no NUL', () => {
    fc.assert(
      fc.property(id, id, id, (account, transferId, legacy) => {
        fc.pre(!legacy.includes('\u0000'));
        expect(dedupKey(account, transferId)).not.toBe(legacy);
      }),
      { numRuns: 2000 },
    );
  });

  test('should give the transferId back when a key of either format is read for a report', () => {
    fc.assert(
      fc.property(id, id, (account, transferId) => {
        expect(transferIdOfDedupKey(dedupKey(account, transferId))).toBe(transferId);
      }),
      { numRuns: 2000 },
    );
    expect(transferIdOfDedupKey('t-legacy')).toBe('t-legacy');
  });
});
