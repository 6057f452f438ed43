import { describe, expect, it } from 'vitest';
import {
  decodeMemberInfo,
  encodeMemberInfo,
  type MemberInfo,
  planAssignment,
  planOwners,
  splitAssignment,
  STANDBY_TOPIC,
} from '../../../src/runtime/assignor.ts';

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

describe('assignment with member info and standbys', () => {
  const member = (memberId: string, info: Partial<MemberInfo> = {}) => ({
    memberId,
    info: { instanceId: memberId, active: [], standby: [], local: [], ...info },
  });
  const ownedBy = (plan: { owner: string[] }, m: string) => plan.owner.flatMap((o, p) => (o === m ? [p] : []));

  it('should give every member the floor or the ceiling of the share, keeping what members already run', () => {
    const plan = planAssignment([member('a', { active: [0, 1] }), member('b', { active: [2, 3] }), member('c')], 4, 0);
    expect(plan.owner.filter((o, p) => o !== ['a', 'a', 'b', 'b'][p]).length).toBe(1);
    expect([ownedBy(plan, 'a').length, ownedBy(plan, 'b').length, ownedBy(plan, 'c').length].sort()).toEqual([1, 1, 2]);
  });

  it("should fail a dead member's partitions over to the members keeping standbys of them", () => {
    // i1 died; i0 kept warm copies of i1's partitions 2 and 3, i2 of none of them.
    const plan = planAssignment(
      [
        member('m0', { instanceId: 'i0', active: [0], standby: [2, 3] }),
        member('m2', { instanceId: 'i2', active: [1] }),
      ],
      4,
      1,
    );
    expect(ownedBy(plan, 'm0')).toEqual([0, 2]);
    expect(ownedBy(plan, 'm2')).toEqual([1, 3]);
  });

  it("should place each partition's standbys on other members than its owner, spread evenly, warm ones first", () => {
    const plan = planAssignment(
      [member('a', { active: [0, 1], standby: [2] }), member('b', { active: [2, 3], standby: [0] }), member('c')],
      6,
      1,
    );
    for (let p = 0; p < 6; p++) {
      expect(plan.standbys[p]).toHaveLength(1);
      expect(plan.standbys[p]).not.toContain(plan.owner[p]);
    }
    const load = new Map<string, number>();
    for (const list of plan.standbys) for (const m of list) load.set(m, (load.get(m) ?? 0) + 1);
    expect([...load.values()].every((n) => n === 2)).toBe(true);
    expect(plan.standbys[2]).toEqual(['a']);
    expect(plan.standbys[0]).toEqual(['b']);
  });

  it('should plan as many standbys as there are other members at most', () => {
    const plan = planAssignment([member('a'), member('b')], 4, 3);
    expect(plan.standbys.every((list) => list.length === 1)).toBe(true);
    expect(planAssignment([member('a')], 4, 1).standbys.every((list) => list.length === 0)).toBe(true);
  });

  it('should plan the same whatever order the members come in', () => {
    const members = [
      member('x', { instanceId: 'i2', local: [1] }),
      member('y', { instanceId: 'i0' }),
      member('z', { instanceId: 'i1', standby: [3] }),
    ];
    const one = planAssignment(members, 8, 1);
    const two = planAssignment([...members].reverse(), 8, 1);
    expect(two).toEqual(one);
  });

  it('should round-trip member info and read a member without (or with broken) user data as holding nothing', () => {
    const info: MemberInfo = { instanceId: 'i3', active: [1, 2], standby: [0], local: [1, 2, 5] };
    expect(decodeMemberInfo('m', encodeMemberInfo(info))).toEqual(info);
    expect(decodeMemberInfo('m', undefined)).toEqual({ instanceId: 'm', active: [], standby: [], local: [] });
    expect(decodeMemberInfo('m', Buffer.from('{not json'))).toEqual({
      instanceId: 'm',
      active: [],
      standby: [],
      local: [],
    });
    expect(decodeMemberInfo('m', Buffer.from('{"instanceId":"i1","active":[1,-2,"x",2.5]}')).active).toEqual([1]);
  });

  it('should send standby partitions as a pseudo-topic that the runtime splits from the active ones', () => {
    expect(
      splitAssignment([
        { topic: 'in', partitions: [0, 2] },
        { topic: 'credits', partitions: [0, 2] },
        { topic: STANDBY_TOPIC, partitions: [1, 3] },
      ]),
    ).toEqual({ active: [0, 2], standby: [1, 3] });
    expect(splitAssignment([{ topic: 'in', partitions: [1] }])).toEqual({ active: [1], standby: [] });
  });
});
