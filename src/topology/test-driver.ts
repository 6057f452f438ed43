// TopologyTestDriver: runs a topology in-process with no broker, as Kafka Streams' test driver does.
// Every partition is a task with in-memory stores; records written to a topic the topology reads
// (repartition topics, re-routed records) are fed back until the topology is quiet. Each input record
// is processed as its own committed transaction, in offset order per partition.
import { partitionForKey } from '../kafka/partitioner.ts';
import { changelogTopic } from './changelog.ts';
import { MemoryDisk, MemoryTaskStore } from '../stores/memory-store.ts';
import type { TaskStore } from '../stores/types.ts';
import type { ProcessingErrorInfo } from './processing-errors.ts';
import { type InputRecord, type OutputRecord, TaskGraph } from './task-graph.ts';
import { bytesSerde, stringKeySerde, type Topology } from './topology.ts';
import type { Headers, Serde } from './types.ts';

export interface TestDriverOptions {
  applicationId?: string;
  /** Partition count of the co-partitioned source topics (one task each). Default 4. */
  partitions?: number;
  /** Partition counts of other (sink-only) topics; default: `partitions`. */
  topicPartitions?: Record<string, number>;
  startWallClockMs?: number;
  /** Throw when a processor reads a store key it did not name in `prefetch` (default true). */
  strictPrefetch?: boolean;
  /** Called for every record the topology's processing exception handler dead-lettered. */
  onProcessingError?: (info: ProcessingErrorInfo) => void;
  /**
   * Changelog records to restore every logged store from before processing starts (as after a restart
   * on another instance): e.g. another driver's `records(topic)`. Restore skips what the store's
   * `skipOnRestore` says is expired.
   */
  changelog?: (topic: string) => readonly OutputRecord[];
}

export interface TestRecord<K = unknown, V = unknown> {
  topic: string;
  partition: number;
  offset: bigint;
  key: K;
  value: V;
  timestamp: number;
  headers: Headers;
}

interface Task {
  graph: TaskGraph;
  stores: Map<string, TaskStore<unknown>>;
}

export class TopologyTestDriver {
  readonly #topology: Topology;
  readonly #appId: string;
  readonly #partitions: number;
  readonly #topicPartitions: Record<string, number>;
  readonly #tasks: Task[] = [];
  readonly #queue: InputRecord[] = [];
  readonly #logs = new Map<string, OutputRecord[]>();
  readonly #nextOffset = new Map<string, bigint>();
  readonly #sourceTopics: Set<string>;
  readonly #strictPrefetch: boolean;
  readonly #onProcessingError: TestDriverOptions['onProcessingError'];
  #wallClockMs: number;
  #draining = false;

  constructor(topology: Topology, options: TestDriverOptions = {}) {
    this.#topology = topology.validate();
    this.#appId = options.applicationId ?? 'test-app';
    this.#partitions = options.partitions ?? 4;
    this.#topicPartitions = options.topicPartitions ?? {};
    this.#wallClockMs = options.startWallClockMs ?? Date.UTC(2026, 0, 1);
    this.#sourceTopics = new Set(topology.sourceTopics());
    this.#strictPrefetch = options.strictPrefetch ?? true;
    this.#onProcessingError = options.onProcessingError;
    for (let partition = 0; partition < this.#partitions; partition++) {
      this.#tasks.push(this.#createTask(partition, this.#strictPrefetch, this.#onProcessingError, options.changelog));
    }
    for (const task of this.#tasks) task.graph.init();
  }

  get partitions(): number {
    return this.#partitions;
  }

  createInputTopic<K = string, V = Buffer>(
    topic: string,
    serdes: { keySerde?: Serde<K>; valueSerde?: Serde<V> } = {},
  ): TestInputTopic<K, V> {
    if (!this.#sourceTopics.has(topic)) throw new Error(`topic ${topic} is not a source topic of the topology`);
    return new TestInputTopic(
      this,
      topic,
      (serdes.keySerde ?? stringKeySerde) as Serde<K>,
      (serdes.valueSerde ?? bytesSerde) as Serde<V>,
    );
  }

  createOutputTopic<K = string, V = Buffer>(
    topic: string,
    serdes: { keySerde?: Serde<K>; valueSerde?: Serde<V> } = {},
  ): TestOutputTopic<K, V> {
    return new TestOutputTopic(
      this,
      topic,
      (serdes.keySerde ?? stringKeySerde) as Serde<K>,
      (serdes.valueSerde ?? bytesSerde) as Serde<V>,
    );
  }

  /** Appends a raw record to a source topic partition and processes until the topology is quiet. */
  async pipeRaw(
    topic: string,
    partition: number,
    key: Buffer | null,
    value: Buffer | null,
    timestamp?: number,
    headers: Headers = {},
  ): Promise<void> {
    this.#append({ topic, partition, key, value, timestamp: timestamp ?? this.#wallClockMs, headers });
    await this.#drain();
  }

  /** Moves wall-clock time forward and runs due punctuators (each task commits after). */
  async advanceWallClockTime(ms: number): Promise<void> {
    this.#wallClockMs += ms;
    for (const task of this.#tasks) {
      await task.graph.punctuate(this.#wallClockMs);
      // Background work the punctuators started (a purge) is run to its end: results do not depend on timing.
      await task.graph.idle();
      await this.#commit(task);
    }
    await this.#drain();
  }

  /** Committed entries of a store across every task, in key order per task. */
  async storeEntries<V>(name: string): Promise<Map<string, V>> {
    const entries = new Map<string, V>();
    for (const task of this.#tasks) {
      const store = task.stores.get(name);
      if (!store) throw new Error(`store ${name} does not exist`);
      for await (const [key, value] of store.range()) entries.set(key, value as V);
    }
    return entries;
  }

  /** All records written so far to `topic` (outputs, re-routed and repartition records, changelogs). */
  records(topic: string): readonly OutputRecord[] {
    return this.#logs.get(topic) ?? [];
  }

  /** How many changelog records each logged store of task `partition` has written so far: a point for restartTask. */
  changelogPosition(partition: number): Map<string, number> {
    const position = new Map<string, number>();
    for (const spec of this.#topology.stores()) {
      if (!spec.logged) continue;
      const log = this.#logs.get(this.#changelogTopic(spec.name)) ?? [];
      position.set(spec.name, log.filter((r) => r.partition === partition).length);
    }
    return position;
  }

  /**
   * Replaces task `partition` by a new one with fresh stores restored from their changelogs, as another
   * instance taking the task over does: every record, or the first `upTo` of each store (the state a
   * transaction that aborted after that point leaves, since only committed changelog records are read).
   */
  async restartTask(partition: number, upTo?: ReadonlyMap<string, number>): Promise<void> {
    const old = this.#tasks[partition];
    if (!old) throw new Error(`no task ${partition} (of ${this.#partitions})`);
    old.graph.close();
    const task = this.#createTask(partition, this.#strictPrefetch, this.#onProcessingError);
    for (const [name, store] of task.stores) {
      if (!store.options.logged) continue;
      const records = (this.#logs.get(this.#changelogTopic(name)) ?? [])
        .filter((r) => r.partition === partition)
        .slice(0, upTo?.get(name));
      const entries = records.map((r) => ({ key: r.key!.toString('utf8'), value: r.value }));
      await store.restoreBatch(entries, BigInt(entries.length));
    }
    this.#tasks[partition] = task;
    task.graph.init();
  }

  #changelogTopic(store: string): string {
    return changelogTopic(this.#appId, store);
  }

  partitionOf(key: string): number {
    return partitionForKey(Buffer.from(key, 'utf8'), this.#partitions);
  }

  nowMs(): number {
    return this.#wallClockMs;
  }

  close(): void {
    for (const task of this.#tasks) task.graph.close();
  }

  #createTask(
    partition: number,
    strictPrefetch: boolean,
    onProcessingError: TestDriverOptions['onProcessingError'],
    changelog?: TestDriverOptions['changelog'],
  ): Task {
    const stores = new Map<string, TaskStore<unknown>>();
    for (const spec of this.#topology.stores()) {
      const disk = new MemoryDisk();
      if (changelog !== undefined && spec.logged)
        restoreDisk(disk, changelog(this.#changelogTopic(spec.name)), partition, spec.skipOnRestore);
      stores.set(spec.name, new MemoryTaskStore({ ...spec }, { strictPrefetch, disk }));
    }
    const graph = new TaskGraph({
      topology: this.#topology,
      applicationId: this.#appId,
      partition,
      partitions: this.#partitions,
      stores,
      partitionsOf: (topic) => this.#partitionsOf(topic),
      partitionForKey,
      emit: (output) => this.#append(output),
      nowMs: () => this.#wallClockMs,
      ...(onProcessingError ? { onProcessingError } : {}),
    });
    return { graph, stores };
  }

  #partitionsOf(topic: string): number {
    return this.#topicPartitions[topic] ?? this.#partitions;
  }

  #append(output: OutputRecord): void {
    const id = `${output.topic}/${output.partition}`;
    const offset = this.#nextOffset.get(id) ?? 0n;
    this.#nextOffset.set(id, offset + 1n);
    let log = this.#logs.get(output.topic);
    if (!log) this.#logs.set(output.topic, (log = []));
    log.push(output);
    if (this.#sourceTopics.has(output.topic)) this.#queue.push({ ...output, offset });
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let input = this.#queue.shift(); input; input = this.#queue.shift()) {
        const task = this.#tasks[input.partition];
        if (!task) throw new Error(`topic ${input.topic} has no partition ${input.partition} (of ${this.#partitions})`);
        await this.#processOne(task, input);
      }
    } finally {
      this.#draining = false;
    }
  }

  async #processOne(task: Task, input: InputRecord): Promise<void> {
    const keys = new Map<string, Set<string>>();
    task.graph.collectPrefetch(input, keys);
    for (const [name, set] of keys) {
      const store = task.stores.get(name);
      if (!store) throw new Error(`prefetch names unknown store ${name}`);
      await store.prefetch(set);
    }
    try {
      task.graph.process(input);
      await task.graph.punctuate(this.#wallClockMs);
      await task.graph.idle();
    } catch (error) {
      for (const store of task.stores.values()) store.abort();
      throw error;
    }
    await this.#commit(task);
  }

  async #commit(task: Task): Promise<void> {
    for (const store of task.stores.values()) {
      if (!store.commitNeeded()) continue;
      const changelog = store.options.logged ? this.#changelogTopic(store.name) : null;
      let next: bigint | null = null;
      for (const entry of store.pendingChangelog()) {
        if (!changelog) break;
        this.#append({
          topic: changelog,
          partition: task.graph.partition,
          key: Buffer.from(entry.key, 'utf8'),
          value: entry.value,
          timestamp: this.#wallClockMs,
          headers: {},
        });
        next = this.#nextOffset.get(`${changelog}/${task.graph.partition}`) ?? null;
      }
      await store.flush(next);
    }
  }
}

export class TestInputTopic<K, V> {
  readonly #driver: TopologyTestDriver;
  readonly #topic: string;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;

  constructor(driver: TopologyTestDriver, topic: string, keySerde: Serde<K>, valueSerde: Serde<V>) {
    this.#driver = driver;
    this.#topic = topic;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
  }

  /** Writes a record to the partition its key hashes to (murmur2), or to `partition` when given. */
  async pipeInput(
    key: K | null,
    value: V | null,
    options: { timestamp?: number; headers?: Headers; partition?: number } = {},
  ): Promise<void> {
    const keyBytes = key === null ? null : this.#keySerde.serialize(key);
    const valueBytes = value === null ? null : this.#valueSerde.serialize(value);
    const partition = options.partition ?? (keyBytes ? partitionForKey(keyBytes, this.#driver.partitions) : 0);
    await this.#driver.pipeRaw(this.#topic, partition, keyBytes, valueBytes, options.timestamp, options.headers ?? {});
  }
}

export class TestOutputTopic<K, V> {
  readonly #driver: TopologyTestDriver;
  readonly #topic: string;
  readonly #keySerde: Serde<K>;
  readonly #valueSerde: Serde<V>;
  #position = 0;

  constructor(driver: TopologyTestDriver, topic: string, keySerde: Serde<K>, valueSerde: Serde<V>) {
    this.#driver = driver;
    this.#topic = topic;
    this.#keySerde = keySerde;
    this.#valueSerde = valueSerde;
  }

  /** Records not read yet, deserialized, in the order they were written. */
  readRecordsToList(): Array<TestRecord<K | null, V | null>> {
    const all = this.#driver.records(this.#topic);
    const fresh = all.slice(this.#position);
    this.#position = all.length;
    return fresh.map((r, i) => ({
      topic: r.topic,
      partition: r.partition,
      offset: BigInt(this.#position - fresh.length + i),
      key: r.key === null ? null : this.#keySerde.deserialize(r.key),
      value: r.value === null ? null : this.#valueSerde.deserialize(r.value),
      timestamp: r.timestamp,
      headers: r.headers,
    }));
  }

  readValuesToList(): Array<V | null> {
    return this.readRecordsToList().map((r) => r.value);
  }

  isEmpty(): boolean {
    return this.#position >= this.#driver.records(this.#topic).length;
  }
}

/** Writes one partition's changelog records onto a disk, as the engine's restore does (in one batch). */
function restoreDisk(
  disk: MemoryDisk,
  records: readonly OutputRecord[],
  partition: number,
  skip: ((key: string) => boolean) | undefined,
): void {
  const entries = records
    .filter((r) => r.partition === partition && r.key !== null)
    .map((r) => ({
      key: (r.key as Buffer).toString('utf8'),
      value: r.value === null ? null : Buffer.from(r.value as Buffer),
    }))
    .filter(({ key }) => skip === undefined || !skip(key));
  // No checkpoint: this driver numbers its own changelog offsets from 0 again.
  disk.write(entries, null);
}
