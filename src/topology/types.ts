// The public processor API, modelled on Kafka Streams' org.apache.kafka.streams.processor.api. The
// store-facing types (KeyValueStore, RangeOptions, Serde) live in src/stores/types.ts and are
// re-exported here, so a topology author reads one file. Nothing here knows about Kafka protocols or
// about banks.
import type { KeyValueStore } from '../stores/types.ts';

export type { KeyValueStore, RangeOptions, Serde } from '../stores/types.ts';

import type { Headers } from '../kafka/records.ts';

export type { Headers } from '../kafka/records.ts';

/** A record flowing through a topology, frozen by `record()`. Copy it with the `with*` helpers of record.ts. */
export interface Rec<K = unknown, V = unknown> {
  readonly key: K;
  readonly value: V;
  /** Event time in epoch milliseconds. */
  readonly timestamp: number;
  readonly headers: Headers;
}

/** Where the record being processed came from (undefined outside `process`, e.g. in a punctuator). */
export interface RecordMetadata {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

export type PunctuationType = 'wall-clock' | 'stream-time';

export interface Cancellable {
  cancel(): void;
}

/**
 * What one processor node is given in `init`: read-only facts about its task (Kafka Streams'
 * ProcessorContext), the stores it is connected to, `forward` to its children, and punctuation.
 */
export interface ProcessorContext<KOut = unknown, VOut = unknown> {
  readonly applicationId: string;
  /** "<subtopology>_<partition>" in Kafka Streams; here the task's partition number as a string. */
  readonly taskId: string;
  readonly partition: number;
  /** Number of partitions of the co-partitioned source topics. */
  readonly partitions: number;
  /** The partition (task) that owns `key` in the co-partitioned topics: Java-compatible murmur2 of its UTF-8 bytes. */
  partitionForKey(key: string): number;
  recordMetadata(): RecordMetadata | undefined;
  getStore<V>(name: string): KeyValueStore<V>;
  /** Sends a record to every child node, or to the named child (a processor or a sink). */
  forward(record: Rec<KOut, VOut>, childName?: string): void;
  /** Stream time: the largest record timestamp seen by this task (-1 before its first record). */
  currentStreamTimeMs(): number;
  currentSystemTimeMs(): number;
  /**
   * Calls `punctuator` every `intervalMs` (a positive integer) of wall-clock or stream time, between
   * records, in the task's transaction. A punctuator that throws has its writes and outputs undone and
   * that run skipped (src/topology/processing-errors.ts); the next interval runs it again.
   */
  schedule(
    intervalMs: number,
    type: PunctuationType,
    punctuator: (timestampMs: number) => void | Promise<void>,
  ): Cancellable;
}

/** Collects the store keys a record will read, so they can be loaded for the whole batch at once. */
export interface PrefetchCollector {
  add(store: string, key: string): void;
}

export interface Processor<KIn = unknown, VIn = unknown, KOut = unknown, VOut = unknown> {
  init?(context: ProcessorContext<KOut, VOut>): void;
  /** Names the store keys `process(record)` will read. Required when the processor reads stores. */
  prefetch?(record: Rec<KIn, VIn>, keys: PrefetchCollector): void;
  process(record: Rec<KIn, VIn>): void;
  close?(): void;
  /**
   * Settles once the background work the processor started (never awaited by the processing loop,
   * such as a store's expiry) is done: for TopologyTestDriver and benchmarks, which want it settled.
   */
  idle?(): Promise<void>;
}

export type ProcessorSupplier<KIn = unknown, VIn = unknown, KOut = unknown, VOut = unknown> = () => Processor<
  KIn,
  VIn,
  KOut,
  VOut
>;

/** Chooses a partition for a sink record; the default is Kafka's Java-compatible murmur2 of the serialized key, and the task's own partition (modulo the count) for a null key. */
export type SinkPartitioner<K, V> = (key: K, value: V, keyBytes: Buffer | null, partitions: number) => number;
