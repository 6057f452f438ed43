// One task's instance of a topology: processor instances, forwarding, containment and punctuation; each
// processor's context is in node-context.ts, the records in and out in task-records.ts.
// Shared by the Kafka runtime and the TopologyTestDriver, so both run processors the same way.
import { isStorableKey } from '../stores/keys.ts';
import type { TaskStore } from '../stores/types.ts';
import { NodeContext } from './node-context.ts';
import {
  deadLetterHeaders,
  isInfrastructureError,
  ProcessingError,
  type ProcessingErrorInfo,
  type ProcessingExceptionHandler,
  type ProcessingPhase,
  UnstorableKeyError,
} from './processing-errors.ts';
import { record as makeRecord } from './record.ts';
import { type SinkNode, type SourceNode, TopologyError } from './topology.ts';
import type { InputRecord, OutputRecord, TaskGraphOptions } from './task-records.ts';
import type { Cancellable, Processor, PunctuationType, Rec, RecordMetadata } from './types.ts';

export type { InputRecord, OutputRecord, TaskGraphOptions } from './task-records.ts';

interface Punctuation {
  intervalMs: number;
  type: PunctuationType;
  nextMs: number;
  punctuator: (timestampMs: number) => void | Promise<void>;
  cancelled: boolean;
  /** The processor that scheduled it. */
  node: string;
}

export type ProcessResult = 'processed' | 'rerouted' | 'dead-lettered';

/** A record whose processing threw: where, and what. */
interface Failure {
  readonly node: string;
  readonly phase: ProcessingPhase;
  readonly error: unknown;
}

export class TaskGraph {
  readonly #options: TaskGraphOptions;
  readonly #sourcesByTopic = new Map<string, SourceNode>();
  readonly #processors = new Map<string, Processor>();
  readonly #contexts = new Map<string, NodeContext>();
  readonly #punctuations: Punctuation[] = [];
  readonly #handler: ProcessingExceptionHandler;
  /** The task's stores in an array: a savepoint is set on each before every record, without an iterator. */
  readonly #storeList: TaskStore<unknown>[];
  /** Records whose prefetch failed, until their turn to be processed (normally empty: one size check per record). */
  readonly #prefetchFailures = new Map<InputRecord, Failure>();
  /** The current record's outputs, emitted when it succeeds and dropped when it throws. */
  readonly #pending: OutputRecord[] = [];
  #pendingCount = 0;
  #inRecord = false;
  /** The innermost node running: where an exception came from (saved and restored around each delivery). */
  #node = '';
  #metadata: RecordMetadata | undefined;
  #streamTimeMs = -1;
  #collectInto: Map<string, Set<string>> | undefined;
  /** One collector for every record (no allocation per record); it refuses keys no store could keep. */
  readonly #collector = {
    add: (store: string, key: string): void => {
      if (!isStorableKey(key)) throw new UnstorableKeyError(store, key);
      const keys = this.#collectInto!;
      let set = keys.get(store);
      if (!set) keys.set(store, (set = new Set()));
      set.add(key);
    },
  };

  constructor(options: TaskGraphOptions) {
    this.#options = options;
    this.#handler = options.topology.processingExceptionHandler();
    this.#storeList = [...options.stores.values()];
    for (const source of options.topology.sources()) {
      for (const topic of source.topics) this.#sourcesByTopic.set(topic, source);
    }
    for (const node of options.topology.nodes()) {
      if (node.kind !== 'processor') continue;
      this.#processors.set(node.name, node.supplier());
      this.#contexts.set(node.name, new NodeContext(this, node));
    }
  }

  get partition(): number {
    return this.#options.partition;
  }

  get options(): TaskGraphOptions {
    return this.#options;
  }

  get streamTimeMs(): number {
    return this.#streamTimeMs;
  }

  recordMetadata(): RecordMetadata | undefined {
    return this.#metadata;
  }

  init(): void {
    for (const [name, processor] of this.#processors) processor.init?.(this.#contexts.get(name)!);
  }

  /** Settles once every processor's background work is done (Processor.idle): tests and benchmarks. */
  async idle(): Promise<void> {
    await Promise.all([...this.#processors.values()].map((processor) => processor.idle?.()));
  }

  close(): void {
    let first: unknown;
    for (const processor of this.#processors.values()) {
      try {
        processor.close?.();
      } catch (error) {
        first ??= error;
      }
    }
    if (first) throw first;
  }

  /**
   * Adds the store keys `input` will read to `keys` (store name → keys). Misrouted records read nothing.
   * Prefetch is pure (it reads the record, not the stores), so a failure here is deterministic: the
   * record is kept aside and dead-lettered at its turn in `process`, without running it.
   */
  collectPrefetch(input: InputRecord, keys: Map<string, Set<string>>): void {
    const source = this.#source(input.topic);
    if (this.#isMisrouted(source, input)) return;
    let rec: Rec;
    try {
      rec = this.#deserialize(source, input);
    } catch (error) {
      this.#prefetchFailed(input, { node: source.name, phase: 'deserialize', error });
      return;
    }
    this.#collectInto = keys;
    let node = '';
    try {
      for (const child of source.children) {
        node = child;
        this.#collectFrom(child, rec, this.#collector);
      }
    } catch (error) {
      this.#prefetchFailed(input, { node, phase: 'prefetch', error });
    } finally {
      this.#collectInto = undefined;
    }
  }

  /** Runs one input record through the graph, or re-routes it to the partition its key belongs to. */
  process(input: InputRecord): ProcessResult {
    const source = this.#source(input.topic);
    if (this.#isMisrouted(source, input)) {
      const partition = this.#options.partitionForKey(input.key!, this.#options.partitions);
      this.#options.emit({
        topic: input.topic,
        partition,
        key: input.key,
        value: input.value,
        timestamp: input.timestamp,
        headers: input.headers,
      });
      return 'rerouted';
    }
    this.#metadata = { topic: input.topic, partition: input.partition, offset: input.offset };
    if (input.timestamp > this.#streamTimeMs) this.#streamTimeMs = input.timestamp;
    try {
      const prefetchFailure = this.#prefetchFailures.size > 0 ? this.#prefetchFailures.get(input) : undefined;
      if (prefetchFailure !== undefined) {
        this.#prefetchFailures.delete(input);
        this.#deadLetter(input, prefetchFailure);
        return 'dead-lettered';
      }
      // Retried alone: the first attempt's effects are undone, so the second starts from the same state.
      const first = this.#attempt(source, input);
      if (first === undefined) return 'processed';
      const second = this.#attempt(source, input);
      if (second === undefined) return 'processed';
      this.#deadLetter(input, second);
      return 'dead-lettered';
    } finally {
      this.#metadata = undefined;
    }
  }

  /** Runs due punctuators: wall-clock against `nowMs`, stream-time against the task's stream time. */
  async punctuate(nowMs: number): Promise<number> {
    let ran = 0;
    for (const p of this.#punctuations) {
      if (p.cancelled) continue;
      const time = p.type === 'wall-clock' ? nowMs : this.#streamTimeMs;
      if (time < 0 || time < p.nextMs) continue;
      p.nextMs = time + p.intervalMs;
      await this.#punctuateOne(p, time);
      ran += 1;
    }
    return ran;
  }

  /**
   * One punctuation, contained like a record (KIP-1033 covers punctuators too): from a savepoint, its
   * outputs held back. When it throws, its writes and outputs are undone and this run is skipped (there is
   * no record to dead-letter; the next interval runs it again), reported with topic null and offset -1.
   * The engine runs punctuators between records, never interleaved with them, so the savepoint holds.
   */
  async #punctuateOne(p: Punctuation, time: number): Promise<void> {
    const stores = this.#beginContained(p.node);
    try {
      await p.punctuator(time);
    } catch (error) {
      this.#inRecord = false;
      this.#pendingCount = 0;
      const info = {
        node: this.#node,
        phase: 'punctuate' as const,
        topic: null,
        partition: this.#options.partition,
        offset: -1n,
      };
      this.#node = '';
      if (isInfrastructureError(error)) throw error;
      if (this.#handler.response === 'fail') throw new ProcessingError(info, error);
      for (let i = 0; i < stores.length; i++) stores[i]!.rollbackToSavepoint();
      this.#options.onProcessingError?.({ ...info, error });
      return;
    }
    this.#endContained();
  }

  schedule(
    intervalMs: number,
    type: PunctuationType,
    punctuator: (timestampMs: number) => void | Promise<void>,
    node = '',
  ): Cancellable {
    if (!Number.isInteger(intervalMs) || intervalMs < 1)
      throw new TopologyError(`punctuation interval must be a positive integer of ms, got ${intervalMs}`);
    const base = type === 'wall-clock' ? this.#options.nowMs() : Math.max(this.#streamTimeMs, 0);
    const entry: Punctuation = { intervalMs, type, nextMs: base + intervalMs, punctuator, cancelled: false, node };
    this.#punctuations.push(entry);
    return { cancel: () => void (entry.cancelled = true) };
  }

  /** Delivers a record to a child node: a processor processes it, a sink serializes and emits it. */
  deliver(childName: string, rec: Rec): void {
    const node = this.#options.topology.node(childName);
    if (!node) throw new TopologyError(`unknown node ${childName}`);
    // Restored only on success: after a throw, #node names the innermost node that threw.
    const parent = this.#node;
    this.#node = childName;
    if (node.kind === 'processor') {
      this.#processors.get(childName)!.process(rec);
    } else if (node.kind === 'sink') {
      this.#emitToSink(node, rec);
    } else {
      throw new TopologyError(`cannot forward to source ${childName}`);
    }
    this.#node = parent;
  }

  /**
   * Runs the record once from a savepoint of every store. On success its outputs are emitted; on a
   * processing exception its writes and outputs are undone and the failure is returned. Infrastructure
   * errors, and every error under the 'fail' handler, are thrown (the caller aborts the transaction).
   */
  #attempt(source: SourceNode, input: InputRecord): Failure | undefined {
    const stores = this.#beginContained(source.name);
    let phase: ProcessingPhase = 'deserialize';
    try {
      const rec = this.#deserialize(source, input);
      phase = 'process';
      for (const child of source.children) this.deliver(child, rec);
    } catch (error) {
      this.#inRecord = false;
      this.#pendingCount = 0;
      const failure: Failure = { node: this.#node, phase, error };
      if (isInfrastructureError(error)) throw error;
      if (this.#handler.response === 'fail') throw new ProcessingError(this.#describe(input, failure), error);
      for (let i = 0; i < stores.length; i++) stores[i]!.rollbackToSavepoint();
      this.#node = '';
      return failure;
    }
    this.#endContained();
    return undefined;
  }

  /** Starts a contained unit (a record or a punctuation): a savepoint of every store, outputs held back. */
  #beginContained(node: string): TaskStore<unknown>[] {
    const stores = this.#storeList;
    for (let i = 0; i < stores.length; i++) stores[i]!.savepoint();
    this.#inRecord = true;
    this.#pendingCount = 0;
    this.#node = node;
    return stores;
  }

  /** Ends a contained unit that succeeded: its held-back outputs are emitted, in order. */
  #endContained(): void {
    this.#inRecord = false;
    this.#node = '';
    const pending = this.#pending;
    const count = this.#pendingCount;
    this.#pendingCount = 0;
    for (let i = 0; i < count; i++) this.#options.emit(pending[i]!);
  }

  /** A deterministic failure: the original record to the dead-letter topic, with the error in headers. */
  #deadLetter(input: InputRecord, failure: Failure): void {
    const handler = this.#handler;
    const info = this.#describe(input, failure);
    if (handler.response !== 'dead-letter') throw new ProcessingError(info, failure.error);
    const partitions = this.#options.partitionsOf(handler.topic);
    // Keyed like every sink record, so a DLQ consumer finds one key's letters in one partition.
    const partition =
      input.key !== null && input.key.length > 0
        ? this.#options.partitionForKey(input.key, partitions)
        : this.#options.partition % partitions;
    const headers = deadLetterHeaders(input.headers, info, failure.error);
    this.#options.emit({
      topic: handler.topic,
      partition,
      key: input.key,
      value: input.value,
      timestamp: input.timestamp,
      headers,
    });
    this.#options.onProcessingError?.({ ...info, error: failure.error });
  }

  #describe(input: InputRecord, failure: Failure): Omit<ProcessingErrorInfo, 'error'> {
    return {
      node: failure.node,
      phase: failure.phase,
      topic: input.topic,
      partition: input.partition,
      offset: input.offset,
    };
  }

  #prefetchFailed(input: InputRecord, failure: Failure): void {
    if (isInfrastructureError(failure.error)) throw failure.error;
    if (this.#handler.response === 'fail') throw new ProcessingError(this.#describe(input, failure), failure.error);
    this.#prefetchFailures.set(input, failure);
  }

  #collectFrom(nodeName: string, rec: Rec, collector: { add(store: string, key: string): void }): void {
    const node = this.#options.topology.node(nodeName);
    if (node?.kind !== 'processor') return;
    this.#processors.get(nodeName)!.prefetch?.(rec, collector);
  }

  #emitToSink(node: SinkNode, rec: Rec): void {
    const key = rec.key === null || rec.key === undefined ? null : node.keySerde.serialize(rec.key);
    const value = rec.value === null || rec.value === undefined ? null : node.valueSerde.serialize(rec.value);
    const partitions = this.#options.partitionsOf(node.topic);
    let partition: number;
    if (node.partitioner) partition = node.partitioner(rec.key, rec.value, key, partitions);
    else if (key) partition = this.#options.partitionForKey(key, partitions);
    else partition = this.#options.partition % partitions;
    if (!Number.isInteger(partition) || partition < 0 || partition >= partitions) {
      throw new TopologyError(`sink ${node.name}: partitioner chose partition ${partition} of ${partitions}`);
    }
    const output: OutputRecord = {
      topic: node.topic,
      partition,
      key,
      value,
      timestamp: rec.timestamp,
      headers: rec.headers,
    };
    // Inside a record or a punctuation its outputs wait for it to succeed.
    if (this.#inRecord) this.#pending[this.#pendingCount++] = output;
    else this.#options.emit(output);
  }

  #source(topic: string): SourceNode {
    const source = this.#sourcesByTopic.get(topic);
    if (!source) throw new TopologyError(`no source reads topic ${topic}`);
    return source;
  }

  #isMisrouted(source: SourceNode, input: InputRecord): boolean {
    if (!source.rerouteMisroutedKeys || input.key === null || input.key.length === 0) return false;
    return this.#options.partitionForKey(input.key, this.#options.partitions) !== this.#options.partition;
  }

  #deserialize(source: SourceNode, input: InputRecord): Rec {
    const key = input.key === null ? null : source.keySerde.deserialize(input.key);
    const value = input.value === null ? null : source.valueSerde.deserialize(input.value);
    return makeRecord(key, value, input.timestamp, input.headers);
  }
}
