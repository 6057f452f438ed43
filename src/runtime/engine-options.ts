// The engine's options, their defaults, and the context its parts share (the facade builds it once).
import type { ConnectionOptions } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { ClusterKeys } from '../config/cluster-key.ts';
import type { BrokerHealth, BrokerOutage } from '../kafka/retry.ts';
import type { StreamsState } from '../streams/status.ts';
import type { ProcessingErrorInfo } from '../topology/processing-errors.ts';
import type { Topology } from '../topology/topology.ts';
import type { InternalRecords } from './internal-records.ts';
import type { GroupMembership } from './membership.ts';
import type { OffsetResetPolicy } from '../kafka/offset-reset.ts';
import type { RecordAuthOptions } from './record-auth.ts';

export interface KafkaStreamsOptions {
  applicationId: string;
  instanceId: string;
  brokers: string[];
  stateDir: string;
  commitIntervalMs: number;
  batchRecordsMax: number;
  /**
   * Commit as soon as every fetched partition is processed up to its last stable offset and no commit is
   * in flight, rather than at the next commitIntervalMs (default true). Live, a record then waits for one
   * commit, not for the interval and a commit; on a backlog nothing is caught up, and the interval and
   * batchRecordsMax decide as before, so transactions stay large where their fixed cost matters.
   */
  commitWhenCaughtUp?: boolean;
  logger: Logger;
  connection?: ConnectionOptions;
  /** Transaction timeout; @platformatic/kafka sends its request `timeout` as the transaction timeout. */
  transactionTimeoutMs?: number;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  fetchMaxWaitMs?: number;
  /** The processing loop's fetch.min.bytes: the broker answers once this much is readable or fetchMaxWaitMs passed (default 1). */
  fetchMinBytes?: number;
  /**
   * Compression of the transaction's record batches (outputs, legs, changelogs); default 'lz4', which
   * measured 1.29-1.56x the sustained records/s of 'none' at 0.88-0.97x the engine's CPU per record in
   * same-run A/Bs (bench/README.md); zstd and snappy were not better. Readers decompress whatever a batch
   * says, so the choice can change between runs: changelogs written without compression still restore.
   */
  compression?: 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
  /** Warm copies of other instances' partitions kept by this one (tailing their changelogs); default 0. */
  standbyReplicas?: number;
  /** What a task does when a source partition has no committed offset (see offset-reset.ts); default 'safe'. */
  offsetReset?: OffsetResetPolicy;
  /** Called after every commit (metrics, tests). */
  onCommit?: (info: { records: number; outputs: number; durationMs: number }) => void;
  /**
   * Called for every record the topology's processing exception handler sent to its dead-letter topic
   * (metrics); the engine logs each one itself. The dead letter commits with the offset, or not at all.
   */
  onProcessingError?: (info: ProcessingErrorInfo) => void;
  /** The cluster keys: every repartition and changelog record is signed with them, and applied only if it verifies. */
  clusterKeys: ClusterKeys;
  /** Upgrade and incident switches for internal-record authentication (see record-auth.ts). */
  recordAuth?: RecordAuthOptions;
  /** false only for the bench's A/B measure of the MACs' cost (nothing signed or checked); never from configuration. */
  internalRecordMacs?: boolean;
  /** Where this instance's broker outages are reported (/readyz, metrics); one of its own by default. */
  brokerHealth?: BrokerHealth;
  /** How long a task state folder stays after it was last in use here (state-cleaner.ts); default 10 min. */
  stateCleanupDelayMs?: number;
  /** Changelog records an unassigned state folder may be behind and still be kept as warm (default 10,000). */
  acceptableRecoveryLag?: number;
  /** How long, in ms, the changelog ends of local folders are waited for before each join, at most (default 5,000). */
  recoveryLagMeasureTimeoutMs?: number;
  /** Called with the folders each state cleanup deleted (metrics). */
  onStateCleanup?: (deleted: string[]) => void;
  /**
   * Called for every fetch round of the processing loop that the broker answered, with the input records
   * it brought (metrics: a live load runs hundreds of small rounds per second, a backlog a few large ones).
   */
  onFetchRound?: (info: { records: number }) => void;
  /**
   * Join with group.instance.id = instanceId (KIP-345; membership.ts). Default false, as Kafka's
   * group.instance.id; bankstream's configuration turns it on (STATIC_MEMBERSHIP, default true).
   */
  staticMembership?: boolean;
  /** A static member leaves the group when it stops (scale-down); default false: a restart keeps its partitions. */
  leaveGroupOnClose?: boolean;
}

type Optional = 'connection' | 'onCommit' | 'onProcessingError' | 'recordAuth' | 'internalRecordMacs';

export type ResolvedOptions = Required<Omit<KafkaStreamsOptions, Optional | 'brokerHealth'>> &
  Pick<KafkaStreamsOptions, Optional>;

/** Before each join, how long the changelog ends of the local state folders are waited for in all, at most (ms). */
export const RECOVERY_LAG_MEASURE_TIMEOUT_MS = 5_000;

/** How often unused state folders are looked for, at most (ms). */
export const STATE_CLEANUP_INTERVAL_MS = 60_000;

/**
 * Failures in a row (without a successful commit in between) after which the instance stops. Broker
 * outages do not count: they are waited out (src/kafka/retry.ts), however long they last.
 */
export const MAX_CONSECUTIVE_FAILURES = 10;

export function resolveOptions(options: KafkaStreamsOptions): ResolvedOptions {
  return {
    transactionTimeoutMs: 10_000,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 1000,
    fetchMaxWaitMs: 50,
    fetchMinBytes: 1,
    commitWhenCaughtUp: true,
    compression: 'lz4',
    standbyReplicas: 0,
    offsetReset: 'safe',
    staticMembership: false,
    leaveGroupOnClose: false,
    ...options,
    stateCleanupDelayMs: options.stateCleanupDelayMs ?? 600_000,
    acceptableRecoveryLag: options.acceptableRecoveryLag ?? 10_000,
    recoveryLagMeasureTimeoutMs: options.recoveryLagMeasureTimeoutMs ?? RECOVERY_LAG_MEASURE_TIMEOUT_MS,
    onStateCleanup: options.onStateCleanup ?? (() => {}),
    onFetchRound: options.onFetchRound ?? (() => {}),
  } as ResolvedOptions;
}

/** One generation's assignment of this member: active partitions and standby partitions. */
export interface Assignment {
  generationId: number;
  partitions: number[];
  standby: number[];
}

/** What every part of one engine shares; built once by the facade (KafkaStreams). */
export interface EngineContext {
  readonly topology: Topology;
  readonly options: ResolvedOptions;
  readonly log: Logger;
  readonly internal: InternalRecords;
  readonly brokerHealth: BrokerHealth;
  /** The engine's own outage (component 'streams'). */
  readonly outage: BrokerOutage;
  /** Static membership (KIP-345) and what the group does to this instance (membership.ts). */
  readonly membership: GroupMembership;
  /** Aborted by close(): ends every wait for the broker. */
  readonly stop: AbortController;
  state: StreamsState;
  /** Tells the status listeners (rebalance, restore done, stop). */
  emitStatus(): void;
}
