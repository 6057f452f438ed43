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

  it('should keep exactly what a model LRU keeps when sets, gets, peeks, deletes and clears interleave', () => {
    type Op = { kind: 'set' | 'get' | 'peek' | 'delete' | 'clear'; key: number };
    const op = fc.record({
      kind: fc.constantFrom<Op['kind']>('set', 'set', 'get', 'get', 'peek', 'delete', 'clear'),
      key: fc.nat(40),
    });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.array(op, { maxLength: 400 }), (max, ops) => {
        const lru = new LruMap<number, string>(max);
        // The model: keys from least to most recently used.
        let model: Array<[number, string]> = [];
        ops.forEach(({ kind, key }, step) => {
          const at = model.findIndex(([k]) => k === key);
          if (kind === 'set') {
            if (at >= 0) model.splice(at, 1);
            if (max > 0) model.push([key, `v${step}`]);
            if (model.length > max) model.shift();
            lru.set(key, `v${step}`);
          } else if (kind === 'get') {
            const hit = at >= 0 ? model.splice(at, 1)[0] : undefined;
            if (hit) model.push(hit);
            expect(lru.get(key)).toBe(hit?.[1]);
          } else if (kind === 'peek') {
            expect(lru.peek(key)).toBe(at >= 0 ? model[at]![1] : undefined);
          } else if (kind === 'delete') {
            if (at >= 0) model.splice(at, 1);
            expect(lru.delete(key)).toBe(at >= 0);
          } else {
            model = [];
            lru.clear();
          }
          expect(lru.size).toBe(model.length);
        });
        for (const [key, value] of model) expect(lru.peek(key)).toBe(value);
      }),
      { numRuns: 300 },
    );
  });

  it('should evict in least-recently-used order when a large cache evicts on every set', () => {
    // Many evictions after many re-insertions: the kept iterator must still find the oldest live key.
    const max = 5000;
    const lru = new LruMap<number, number>(max);
    for (let i = 0; i < max; i++) lru.set(i, i);
    // Touch every even key: the odd ones become the oldest, in order.
    for (let i = 0; i < max; i += 2) lru.get(i);
    for (let i = 0; i < max / 2; i++) lru.set(max + i, i);
    for (let i = 0; i < max; i++) expect(lru.has(i)).toBe(i % 2 === 0);
    // Then the even ones, in the order they were touched.
    for (let i = 0; i < max / 2; i++) lru.set(2 * max + i, i);
    for (let i = 0; i < max; i += 2) expect(lru.has(i)).toBe(false);
    expect(lru.size).toBe(max);
  });
});
