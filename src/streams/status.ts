// What the rest of the application sees of a running engine: its state and status, its lag, and read
// access to the stores of the partitions it runs or keeps warm. The HTTP API, the metrics, the sinks and
// the dev stack read the engine through these types only, so they never import the engine (src/runtime).
// A leaf: it imports types from src/stores and src/kafka, nothing from runtime/, http/ or sinks/.
import type { BrokerHealth } from '../kafka/retry.ts';
import type { TaskStore } from '../stores/types.ts';
import type { MembershipStatus } from './membership.ts';
import type { PartitionStop } from '../kafka/partition-stop.ts';

export type { PartitionStop, PartitionStopCode } from '../kafka/partition-stop.ts';

export type StreamsState = 'CREATED' | 'STARTING' | 'REBALANCING' | 'RUNNING' | 'STOPPING' | 'STOPPED' | 'FAILED';

/** The last repartition record refused, for readiness and the operator. */
export interface RejectedRecord {
  topic: string;
  partition: number;
  offset: string;
  /** Why it did not verify (a stable code: missing_mac, bad_mac, malformed_mac, …). */
  reason: string;
  /** The producing task the record claims, if any. */
  claimedTask: string | undefined;
  atMs: number;
}

export interface InternalRecordsStatus {
  /** Repartition records that did not verify (sent to the dead-letter topic, never applied), since start. */
  rejectedRecords: number;
  lastRejected: RejectedRecord | undefined;
  /** Repartition records without a MAC applied because LEGS_ACCEPT_UNSIGNED is on (upgrade mode). */
  unsignedAccepted: number;
  /** Records verified with the previous key (CLUSTER_SECRET_PREVIOUS): a rotation is still draining. */
  previousKeyAccepted: number;
  /** Whether unsigned internal records are accepted (an upgrade switch left on is a degraded state). */
  acceptingUnsigned: boolean;
}

/** What interactive queries, readiness and routing need to know about this instance's tasks. */
export interface StreamsStatus {
  state: StreamsState;
  generationId: number | undefined;
  /** Partitions assigned to this instance in the current generation. */
  assigned: number[];
  /** Assigned partitions whose stores are restored and processing. */
  running: number[];
  /** Partitions this instance keeps standby tasks for. */
  standby: number[];
  /** Changelog records the standbys have not applied yet, summed (as of their last fetch). */
  standbyLagRecords: number;
  restoredRecords: number;
  /** Assigned partitions that do not run, and why (offsets missing with state, offset out of range). */
  stopped: PartitionStop[];
  /** Internal records refused (forged), accepted unsigned or with the previous key (record-mac.ts). */
  internalRecords: InternalRecordsStatus;
  /** Since when (epoch ms) the engine waits for the broker; undefined while the broker answers. */
  brokerUnavailableSinceMs: number | undefined;
  /** Static membership, the generation, rebalances by cause and time without an assignment (runtime/membership.ts). */
  membership: MembershipStatus;
}

export type StreamsListener = (status: StreamsStatus) => void;

/** Committed records of a source partition not processed yet (last stable offset seen by the last fetch − position). */
export interface PartitionLag {
  topic: string;
  partition: number;
  records: number;
}

/** A task's stores as a reader sees them (an active task: committed + uncommitted state; a standby: committed). */
export interface TaskView {
  readonly state: string;
  readonly stores: Map<string, TaskStore<unknown>>;
}

/** A standby task's stores for a stale read, and how far behind the changelogs they are. */
export interface StandbyView {
  task: TaskView;
  /** Changelog records beyond what the standby applied (per the last fetch): 0 when caught up. */
  lagRecords: bigint;
}

/** What the HTTP API, the metrics and the sinks call on a running engine. */
export interface StreamsView {
  readonly state: StreamsState;
  /** The partition count of the co-partitioned topics (known once started). */
  readonly partitions: number;
  /** The broker outages of the engine's parts (and of whatever else shares it: the sink, the API's tails). */
  readonly brokerHealth: BrokerHealth;
  status(): StreamsStatus;
  /** Called on every change of state or of the running tasks; returns the function that removes it. */
  onStatus(listener: StreamsListener): () => void;
  /** Consumer lag of every running task's source partitions, as of the last fetch of each. */
  lag(): PartitionLag[];
  /** The active task of a partition on this instance (running or restoring), if any. */
  task(partition: number): TaskView | undefined;
  /** A standby task's stores for a stale read, with its lag; undefined without one. */
  standby(partition: number): StandbyView | undefined;
}

/** Why readiness reports the engine as degraded, one sentence each (empty: nothing to report). */
export function internalRecordsDegradedReasons(status: InternalRecordsStatus): string[] {
  const reasons: string[] = [];
  if (status.rejectedRecords > 0) {
    const last = status.lastRejected;
    const where = last ? ` (last: ${last.topic}:${last.partition}:${last.offset}, ${last.reason})` : '';
    reasons.push(
      `${status.rejectedRecords} internal record(s) refused for a missing or wrong MAC${where}: someone else writes to an internal topic`,
    );
  }
  if (status.acceptingUnsigned)
    reasons.push('accepting unsigned internal records (CHANGELOG_ACCEPT_UNSIGNED / LEGS_ACCEPT_UNSIGNED is on)');
  return reasons;
}
