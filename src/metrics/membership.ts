// Group membership metrics (issue 20), read from the engine's status at scrape time: the generation,
// assignments received by cause, and the time this instance spent without an assignment.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { MembershipStatus } from '../streams/membership.ts';

export function bindMembershipMetrics(registry: Registry, read: () => MembershipStatus): void {
  for (const name of [
    'bankstream_group_generation',
    'bankstream_group_static_member',
    'bankstream_group_rebalances_total',
    'bankstream_group_unassigned_seconds_total',
  ])
    registry.removeSingleMetric(name);
  new Gauge({
    name: 'bankstream_group_generation',
    help: 'Consumer group generation of the last assignment this instance received (-1 before the first)',
    registers: [registry],
    collect() {
      this.set(read().generationId ?? -1);
    },
  });
  new Gauge({
    name: 'bankstream_group_static_member',
    help: '1 when this instance joins with group.instance.id = INSTANCE_ID (STATIC_MEMBERSHIP)',
    registers: [registry],
    collect() {
      this.set(read().groupInstanceId === undefined ? 0 : 1);
    },
  });
  const last = new Map<string, number>();
  new Counter({
    name: 'bankstream_group_rebalances_total',
    help: 'Assignments this instance received, by cause: start, group_rebalance (another member joined, left or timed out), member_expired (this member timed out), generation_stale, rejoin',
    labelNames: ['cause'],
    registers: [registry],
    collect() {
      const rebalances = read().rebalances;
      for (const [cause, count] of Object.entries(rebalances)) {
        const before = last.get(cause) ?? 0;
        this.inc({ cause }, Math.max(0, count - before));
        last.set(cause, Math.max(before, count));
      }
    },
  });
  let lastUnassignedMs = 0;
  new Counter({
    name: 'bankstream_group_unassigned_seconds_total',
    help: 'Seconds this instance spent without an assignment (joining, waiting for a rebalance), since it started',
    registers: [registry],
    collect() {
      const ms = read().unassignedMs;
      if (ms > lastUnassignedMs) this.inc((ms - lastUnassignedMs) / 1000);
      lastUnassignedMs = Math.max(lastUnassignedMs, ms);
    },
  });
}
