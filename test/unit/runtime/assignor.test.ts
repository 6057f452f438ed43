import { describe, expect, it } from 'vitest';
import { planOwners } from '../../../src/runtime/assignor.ts';

describe('co-partitioned assignment', () => {
  it('should spread partitions evenly when nobody owns anything yet', () => {
    const owners = planOwners(['b', 'a', 'c'], 12, []);
    const load = new Map<string, number>();
    for (const o of owners) load.set(o, (load.get(o) ?? 0) + 1);
    expect([...load.values()]).toEqual([4, 4, 4]);
  });

  it('should keep owned partitions where that keeps the spread even when a member joins', () => {
    const before = ['a', 'a', 'a', 'a', 'a', 'a', 'b', 'b', 'b', 'b', 'b', 'b'];
    const owned = (m: string) => before.flatMap((o, p) => (o === m ? [p] : []));
    const after = planOwners(['a', 'b', 'c'], 12, [owned]);
    const moved = after.filter((o, p) => o !== before[p]).length;
    expect(moved).toBe(4);
    expect(after.filter((o) => o === 'c').length).toBe(4);
  });

  it('should give every partition an owner when there are more members than partitions', () => {
    const owners = planOwners(['a', 'b', 'c', 'd'], 2, []);
    expect(owners.every((o) => o !== '')).toBe(true);
  });
});
