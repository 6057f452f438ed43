import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LruMap } from '../../../src/stores/lru.ts';

describe('LruMap', () => {
  it('should evict the least recently used key when it grows past its bound', () => {
    const lru = new LruMap<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    expect(lru.get('a')).toBe(1);
    lru.set('c', 3);
    expect([lru.has('a'), lru.has('b'), lru.has('c')]).toEqual([true, false, true]);
  });

  it('should hold nothing when its bound is zero', () => {
    const lru = new LruMap<string, number>(0);
    lru.set('a', 1);
    expect(lru.size).toBe(0);
  });

  it('should refuse a bound when it is negative or fractional', () => {
    expect(() => new LruMap(-1)).toThrow();
    expect(() => new LruMap(1.5)).toThrow();
  });

  it('should never exceed its bound when any sequence of sets and gets is applied', () => {
    fc.assert(
      fc.property(fc.nat(5), fc.array(fc.tuple(fc.boolean(), fc.nat(10))), (max, ops) => {
        const lru = new LruMap<number, number>(max);
        const recent: number[] = [];
        for (const [isSet, key] of ops) {
          if (isSet) lru.set(key, key);
          else if (lru.get(key) === undefined) continue;
          recent.splice(recent.indexOf(key) >>> 0, recent.includes(key) ? 1 : 0);
          recent.push(key);
          expect(lru.size).toBeLessThanOrEqual(max);
        }
        // The survivors are exactly the `max` most recently used keys.
        for (const key of recent.slice(-max || recent.length)) expect(lru.has(key)).toBe(max > 0);
      }),
    );
  });
});
