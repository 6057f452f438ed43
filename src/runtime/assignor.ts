// Co-partitioned assignment: partition p of every subscribed topic goes to the same member, since one
// task (one partition number) reads the input topic and the repartition topic alike. Partitions are
// spread as evenly as possible; members are ordered by their id so every leader computes the same plan,
// and a member keeps the partitions it already owned when that keeps the spread even (fewer moves).
import { type GroupPartitionsAssigner } from '@platformatic/kafka';

export const copartitionedAssigner: GroupPartitionsAssigner = (_current, members, topics, metadata) => {
  const memberIds = [...members.keys()].sort();
  let partitionCount = 0;
  for (const topic of topics) partitionCount = Math.max(partitionCount, metadata.topics.get(topic)?.partitionsCount ?? 0);
  const owner = planOwners(memberIds, partitionCount, (memberId) => ownedPartitions(members.get(memberId)));
  return memberIds.map((memberId) => {
    const assignments = new Map<string, { topic: string; partitions: number[] }>();
    for (const topic of topics) {
      const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
      const partitions: number[] = [];
      for (let p = 0; p < count; p++) if (owner[p] === memberId) partitions.push(p);
      assignments.set(topic, { topic, partitions });
    }
    return { memberId, assignments };
  });
};

/** Owner member id per partition: sticky where balanced, then least-loaded members take the rest. */
export function planOwners(memberIds: string[], partitionCount: number, owned: (memberId: string) => number[]): string[] {
  const owner: string[] = new Array(partitionCount).fill('');
  if (memberIds.length === 0) return owner;
  const quota = Math.ceil(partitionCount / memberIds.length);
  const load = new Map(memberIds.map((m) => [m, 0]));
  for (const memberId of memberIds) {
    for (const p of owned(memberId)) {
      if (p < partitionCount && owner[p] === '' && load.get(memberId)! < quota) {
        owner[p] = memberId;
        load.set(memberId, load.get(memberId)! + 1);
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

function ownedPartitions(subscription: { ownedPartitions?: Array<{ partitions: number[] }> } | undefined): number[] {
  const set = new Set<number>();
  for (const owned of subscription?.ownedPartitions ?? []) for (const p of owned.partitions) set.add(p);
  return [...set];
}
