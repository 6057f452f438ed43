// What the group does to this instance (static membership, rebalances by cause), as its status reports it:
// a leaf, read by the engine (runtime/membership.ts) and the metrics.

/** Why this instance received a new assignment. */
export const REBALANCE_CAUSES = ['start', 'group_rebalance', 'member_expired', 'generation_stale', 'rejoin'] as const;
export type RebalanceCause = (typeof REBALANCE_CAUSES)[number];

export interface MembershipStatus {
  /** The group.instance.id this instance joins with; undefined for a dynamic member. */
  groupInstanceId: string | undefined;
  /** Generation of the last assignment received; undefined before the first. */
  generationId: number | undefined;
  /** Assignments received, by cause. */
  rebalances: Record<RebalanceCause, number>;
  /** Milliseconds this instance was a group member without an assignment (since start, current stretch included). */
  unassignedMs: number;
}
