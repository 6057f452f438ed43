// What the sink reports: its state, counters, the partitions it does not read, the unresolved rejects,
// and why such a status makes the instance not ready (/readyz).
import type { PartitionStop } from '../kafka/offset-reset.ts';
import type { UnresolvedRejects } from './batch.ts';

export type SinkState =
  | 'created'
  | 'starting'
  | 'running'
  | 'paused-db-down'
  | 'paused-kafka-error'
  | 'stopping'
  | 'stopped';

export interface SinkStatus {
  state: SinkState;
  lastError: string | null;
  /** Rows inserted by this sink object (transactions, conflicts, audit rows); replays count nothing. */
  rowsWritten: number;
  rejectsWritten: number;
  batchesWritten: number;
  assignedPartitions: number;
  consecutiveFailures: number;
  /** Assigned partitions the sink does not read, and why (offsets missing in a used database, out of range). */
  stoppedPartitions: PartitionStop[];
  /**
   * Records of the sink's topics kept in sink_rejects and not resolved by an operator, as last read
   * from Postgres (by any sink instance of the database; null until first read). Each one may be
   * money the ledger moved and Postgres does not show: an alarm, and the instance is not ready.
   */
  unresolvedRejects: UnresolvedRejects | null;
}

/**
 * Why a sink with this status makes its instance not ready (empty: nothing to say): a partition it does
 * not read (it needs an operator), or an unresolved reject (the read model differs from the ledger).
 */
export function sinkNotReadyReasons(status: SinkStatus): string[] {
  const reasons = status.stoppedPartitions.map(
    (stop) => `sink: ${stop.topic}-${stop.partition} stopped (${stop.code}): ${stop.reason}; ${stop.action}`,
  );
  const rejects = status.unresolvedRejects;
  if (rejects === null || rejects.count === 0) return reasons;
  const first = rejects.first;
  const where = first
    ? `; first ${first.topic}-${first.partition}@${first.offset}${first.key !== null ? ` (key ${JSON.stringify(first.key)})` : ''}: ${first.error}`
    : '';
  reasons.push(
    `sink_rejects: ${rejects.count} record(s) of the outcome and audit topics could not be stored in PostgreSQL, so the read model differs from the ledger${where}; see "bankstream reconcile" and resolve them in sink_rejects`,
  );
  return reasons;
}
