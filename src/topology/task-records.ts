// What goes in and out of a task's graph (task-graph.ts): raw records read from source partitions,
// serialized records for sink topics, and what the graph is given by the runtime or the test driver.
import type { ProcessingErrorInfo } from './processing-errors.ts';
import type { Topology } from './topology.ts';
import type { TaskStore } from '../stores/types.ts';
import type { Headers } from '../kafka/records.ts';

/** A raw record read from a source topic partition (its shape is the Kafka reader's). */
export type { InputRecord } from '../kafka/records.ts';

/** A serialized record for a sink topic, with its partition already chosen. */
export interface OutputRecord {
  topic: string;
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number;
  headers: Headers;
}

export interface TaskGraphOptions {
  topology: Topology;
  applicationId: string;
  partition: number;
  /** Partition count of the co-partitioned source topics. */
  partitions: number;
  stores: ReadonlyMap<string, TaskStore<unknown>>;
  /** Partition count of a sink topic (sinks may write to topics with other counts). */
  partitionsOf(topic: string): number;
  /** Java-compatible murmur2 partition of serialized key bytes. */
  partitionForKey(key: Buffer, partitions: number): number;
  emit(output: OutputRecord): void;
  nowMs(): number;
  /** Called for every record the processing exception handler sent to the dead-letter topic (log, metric). */
  onProcessingError?: (info: ProcessingErrorInfo) => void;
}
