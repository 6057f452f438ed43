// Reads off the primary: the history endpoints may read a streaming replica (DATABASE_READ_URL). A
// replica answers with what it has replayed, so every answer says where it was read and how far that
// server was behind (headers X-Read-Source and X-Replica-Lag-Ms), and a replica further behind than
// READ_REPLICA_LAG_MAX_MS is not read: the read goes to the primary (READ_REPLICA_LAG_POLICY=primary,
// the default) or is refused with 503 (unavailable), for deployments that must keep load off the primary.
import type { ReadReplicaLagPolicy } from '../config/config.ts';

/** What the replica said about itself; `lagMs` null when it cannot tell (nothing replayed yet). */
export interface ReplicaLag {
  standby: boolean;
  lagMs: number | null;
}

export type ReadDecision =
  | { source: 'replica'; lagMs: number }
  | { source: 'primary'; lagMs: number | null; reason: string }
  | { source: 'unavailable'; lagMs: number | null; reason: string };

/**
 * The lag rule. A server that is not in recovery (a promoted replica) is current; a standby is read
 * when its lag is known and at most lagMaxMs; otherwise the policy decides. An unreachable replica
 * is the same as one too far behind.
 */
export function chooseReadSource(
  lag: ReplicaLag | 'unreachable',
  lagMaxMs: number,
  policy: ReadReplicaLagPolicy,
): ReadDecision {
  if (lag !== 'unreachable' && !lag.standby) return { source: 'replica', lagMs: 0 };
  if (lag !== 'unreachable' && lag.lagMs !== null && lag.lagMs <= lagMaxMs)
    return { source: 'replica', lagMs: lag.lagMs };
  const lagMs = lag === 'unreachable' ? null : lag.lagMs;
  const reason =
    lag === 'unreachable'
      ? 'the read replica is unreachable'
      : lagMs === null
        ? 'the read replica cannot tell its lag (nothing replayed yet)'
        : `the read replica is ${lagMs} ms behind (more than READ_REPLICA_LAG_MAX_MS=${lagMaxMs})`;
  return policy === 'primary' ? { source: 'primary', lagMs, reason } : { source: 'unavailable', lagMs, reason };
}

/**
 * Lag as the replica sees it: zero when its WAL receiver is streaming and has replayed all it received
 * (an idle primary sends nothing, and the time since the last replayed transaction would grow without
 * anything being missed); otherwise the time since the last replayed transaction was committed on the
 * primary. Without pg_read_all_stats the receiver's status reads NULL and the second, cautious rule applies.
 */
export const REPLICA_LAG_SQL = `
SELECT pg_is_in_recovery() AS standby,
       CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')
                 AND pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE floor(EXTRACT(EPOCH FROM (clock_timestamp() - pg_last_xact_replay_timestamp())) * 1000)::bigint
       END::text AS lag_ms`;

export function replicaLagOf(row: { standby: boolean; lag_ms: string | null } | undefined): ReplicaLag {
  if (!row) return { standby: true, lagMs: null };
  const lagMs = row.lag_ms === null ? null : Math.max(0, Number(row.lag_ms));
  return { standby: row.standby, lagMs };
}
