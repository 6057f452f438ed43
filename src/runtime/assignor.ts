// Co-partitioned assignment with standby replicas. Partition p of every subscribed topic goes to the same
// member, since one task (one partition number) reads the input topic and the repartition topic alike.
//
// Every member describes itself in its subscription's user data (MemberInfo: its instance id, the
// partitions it runs, the ones it keeps as standbys, the ones it has local state for), because the eager
// protocol sends no owned partitions. The leader then plans, deterministically (members ordered by
// instance id):
//   active   as even as possible (floor or ceil of partitions / members); a partition stays with its
//            owner, else goes to a member with a warm standby of it, else to one with local state, else
//            to the least loaded member: only what must move moves, and a failover lands on a standby;
//   standby  `standbyReplicas` other members per partition (never the owner), warm ones first, spread.
// Standby partitions travel in the assignment as a pseudo-topic that no real topic can be named like
// (Kafka topic names are [a-zA-Z0-9._-]); the runtime reads them out and never fetches that "topic".
import type { ExtendedGroupProtocolSubscription, GroupAssignment, GroupPartitionsAssigner } from '@platformatic/kafka';

/** The assignment entry that carries a member's standby partitions. */
export const STANDBY_TOPIC = '#standby';
/** Group protocol name: every member of the group runs this assignor. */
export const PROTOCOL_NAME = 'bankstream';
/** The name earlier versions joined with (the client's default), still offered for rolling upgrades. */
export const LEGACY_PROTOCOL_NAME = 'roundrobin';

export interface MemberInfo {
  instanceId: string;
  /** Partitions this member runs now (active tasks). */
  active: number[];
  /** Partitions it keeps warm as standby tasks. */
  standby: number[];
  /** Partitions with a state folder on its disk (restores only the changelog tail). */
  local: number[];
}

export function encodeMemberInfo(info: MemberInfo): Buffer {
  return Buffer.from(JSON.stringify({ v: 1, ...info }), 'utf8');
}

/** Tolerant: a member without (or with unreadable) user data is a member that holds nothing. */
export function decodeMemberInfo(memberId: string, data: Buffer | string | undefined | null): MemberInfo {
  const empty: MemberInfo = { instanceId: memberId, active: [], standby: [], local: [] };
  if (data === undefined || data === null || data.length === 0) return empty;
  try {
    const raw = JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as Partial<
      Record<keyof MemberInfo, unknown>
    >;
    const list = (value: unknown) =>
      Array.isArray(value) ? value.filter((p): p is number => Number.isInteger(p) && p >= 0) : [];
    return {
      instanceId: typeof raw.instanceId === 'string' && raw.instanceId !== '' ? raw.instanceId : memberId,
      active: list(raw.active),
      standby: list(raw.standby),
      local: list(raw.local),
    };
  } catch {
    return empty;
  }
}

/**
 * Records a local state folder is behind its changelogs: per store, the changelog end minus the
 * folder's checkpoint (a store without a checkpoint restores from the start: its whole end).
 * Stores with a checkpoint past the end (the changelog was recreated) count as wholly behind.
 */
export function localStateLagRecords(
  checkpoints: ReadonlyMap<string, bigint | null>,
  changelogEnds: ReadonlyMap<string, bigint>,
): bigint {
  let lag = 0n;
  for (const [store, end] of changelogEnds) {
    const checkpoint = checkpoints.get(store) ?? null;
    lag += checkpoint === null || checkpoint > end ? end : end - checkpoint;
  }
  return lag;
}

/**
 * Like Kafka Streams' acceptable.recovery.lag: the local folders worth advertising as warm for
 * placement (MemberInfo.local). A folder measured further behind than `acceptableLagRecords` is not
 * (it would be restored from a checkpoint far in the past, or wiped); one not measured yet is kept.
 */
export function warmLocalPartitions(
  local: readonly number[],
  lagRecords: ReadonlyMap<number, bigint>,
  acceptableLagRecords: number,
): number[] {
  const acceptable = BigInt(acceptableLagRecords);
  return local.filter((p) => (lagRecords.get(p) ?? 0n) <= acceptable);
}

export interface Plan {
  /** Owner member id per partition. */
  owner: string[];
  /** Standby member ids per partition (never the owner). */
  standbys: string[][];
}

/** The leader's plan; `members` in any order (they are sorted by instance id, then member id). */
export function planAssignment(
  members: Array<{ memberId: string; info: MemberInfo }>,
  partitionCount: number,
  standbyReplicas: number,
): Plan {
  const sorted = [...members].sort(
    (a, b) => compare(a.info.instanceId, b.info.instanceId) || compare(a.memberId, b.memberId),
  );
  const ids = sorted.map((m) => m.memberId);
  const info = new Map(sorted.map((m) => [m.memberId, m.info]));
  const has = (memberId: string, kind: 'active' | 'standby' | 'local', p: number) =>
    info.get(memberId)![kind].includes(p);
  const owner = planOwners(ids, partitionCount, [
    (m) => info.get(m)!.active,
    (m) => info.get(m)!.standby,
    (m) => info.get(m)!.local,
  ]);
  const standbys: string[][] = Array.from({ length: partitionCount }, () => []);
  const replicas = Math.min(standbyReplicas, Math.max(0, ids.length - 1));
  const cap = Math.ceil((partitionCount * replicas) / Math.max(1, ids.length));
  const load = new Map(ids.map((m) => [m, 0]));
  for (let round = 0; round < replicas; round++) {
    for (let p = 0; p < partitionCount; p++) {
      const candidates = ids.filter((m) => m !== owner[p] && !standbys[p]!.includes(m));
      const warmth = (m: string) => (has(m, 'standby', p) || has(m, 'active', p) ? 0 : has(m, 'local', p) ? 1 : 2);
      // Warm first while under the fair share, then the least loaded; ties keep the sorted order.
      const rank = (m: string) => [load.get(m)! < cap ? 0 : 1, warmth(m), load.get(m)!] as const;
      let best: string | undefined;
      for (const m of candidates) {
        if (best === undefined || lexLess(rank(m), rank(best))) best = m;
      }
      if (best === undefined) continue;
      standbys[p]!.push(best);
      load.set(best, load.get(best)! + 1);
    }
  }
  // Greedy in partition order can leave a member with more than its share (it could not take the
  // partitions it owns): move standbys from the most to the least loaded member while that helps,
  // cold ones before warm ones. Every move lowers the spread, so this ends.
  for (;;) {
    const most = ids.reduce((a, b) => (load.get(b)! > load.get(a)! ? b : a));
    const least = ids.reduce((a, b) => (load.get(b)! < load.get(a)! ? b : a));
    if (load.get(most)! - load.get(least)! <= 1) break;
    const movable = standbys.flatMap((list, p) =>
      list.includes(most) && owner[p] !== least && !list.includes(least) ? [p] : [],
    );
    const p = movable.find((q) => !has(most, 'standby', q) && !has(most, 'active', q)) ?? movable[0];
    if (p === undefined) break;
    standbys[p] = standbys[p]!.map((m) => (m === most ? least : m));
    load.set(most, load.get(most)! - 1);
    load.set(least, load.get(least)! + 1);
  }
  return { owner, standbys };
}

/**
 * Owner member id per partition, as even as possible (every member gets floor or ceil of the share).
 * Preference tiers are tried in order (e.g. owned, standby, local state), then the least loaded take the rest.
 */
export function planOwners(
  memberIds: string[],
  partitionCount: number,
  tiers: Array<(memberId: string) => number[]>,
): string[] {
  const owner: string[] = new Array(partitionCount).fill('');
  if (memberIds.length === 0) return owner;
  const base = Math.floor(partitionCount / memberIds.length);
  let extra = partitionCount % memberIds.length;
  const load = new Map(memberIds.map((m) => [m, 0]));
  const take = (memberId: string, p: number) => {
    const current = load.get(memberId)!;
    if (current >= base + 1 || (current === base && extra === 0)) return false;
    if (current === base) extra--;
    owner[p] = memberId;
    load.set(memberId, current + 1);
    return true;
  };
  for (const tier of tiers) {
    for (const memberId of memberIds) {
      for (const p of tier(memberId)) {
        if (p < partitionCount && owner[p] === '') take(memberId, p);
      }
    }
  }
  for (let p = 0; p < partitionCount; p++) {
    if (owner[p] !== '') continue;
    const least = memberIds.reduce((a, b) => (load.get(b)! < load.get(a)! ? b : a));
    owner[p] = least;
    load.set(least, load.get(least)! + 1);
  }
  return owner;
}

/** The group assigner for @platformatic/kafka, planning `standbyReplicas` standbys per partition. */
export function createCopartitionedAssigner(standbyReplicas: number): GroupPartitionsAssigner {
  return (_current, members, topics, metadata) => {
    let partitionCount = 0;
    for (const topic of topics)
      partitionCount = Math.max(partitionCount, metadata.topics.get(topic)?.partitionsCount ?? 0);
    const described = [...members.entries()].map(([memberId, subscription]) => ({
      memberId,
      info: memberInfoOf(memberId, subscription),
    }));
    const plan = planAssignment(described, partitionCount, standbyReplicas);
    return described.map(({ memberId }) => {
      const assignments = new Map<string, GroupAssignment>();
      for (const topic of topics) {
        const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
        const partitions: number[] = [];
        for (let p = 0; p < count; p++) if (plan.owner[p] === memberId) partitions.push(p);
        assignments.set(topic, { topic, partitions });
      }
      const standby = plan.standbys.flatMap((list, p) => (list.includes(memberId) ? [p] : []));
      if (standby.length > 0) assignments.set(STANDBY_TOPIC, { topic: STANDBY_TOPIC, partitions: standby });
      return { memberId, assignments };
    });
  };
}

/** Splits a received assignment into active partitions (any real topic) and standby partitions. */
export function splitAssignment(assignments: Array<{ topic: string; partitions: number[] }>): {
  active: number[];
  standby: number[];
} {
  const active = new Set<number>();
  const standby = new Set<number>();
  for (const a of assignments) for (const p of a.partitions) (a.topic === STANDBY_TOPIC ? standby : active).add(p);
  const sorted = (s: Set<number>) => [...s].sort((a, b) => a - b);
  return { active: sorted(active), standby: sorted(standby).filter((p) => !active.has(p)) };
}

function memberInfoOf(memberId: string, subscription: ExtendedGroupProtocolSubscription): MemberInfo {
  const info = decodeMemberInfo(memberId, subscription.metadata);
  // A cooperative-style subscription's owned partitions count as active too.
  for (const owned of subscription.ownedPartitions ?? [])
    for (const p of owned.partitions) if (!info.active.includes(p)) info.active.push(p);
  return info;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}
