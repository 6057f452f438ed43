// A stream task: one input partition's processor graph, stores and positions, with an explicit state
// machine. A lifecycle call in the wrong state throws an error naming the state, operation and task.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { LevelTaskStore } from '../stores/level-store.ts';
import type { TaskStore } from '../stores/types.ts';
import type { ProcessingErrorInfo } from '../topology/processing-errors.ts';
import { type OutputRecord, TaskGraph } from '../topology/task-graph.ts';
import type { Topology } from '../topology/topology.ts';
import { IllegalTaskStateError, settleAll } from './errors.ts';
import type { FetchedRecord } from '../kafka/fetcher.ts';

export type TaskState = 'CREATED' | 'RESTORING' | 'RUNNING' | 'CLOSED';

const TRANSITIONS: Record<TaskState, TaskState[]> = {
  CREATED: ['RESTORING', 'CLOSED'],
  RESTORING: ['RUNNING', 'CLOSED'],
  RUNNING: ['CLOSED'],
  CLOSED: [],
};

export interface TaskOptions {
  topology: Topology;
  applicationId: string;
  partition: number;
  partitions: number;
  /** Folder of this task's stores: <stateDir>/<appId>/<instanceId>/<partition>. */
  dir: string;
  partitionsOf(topic: string): number;
  partitionForKey(key: Buffer, partitions: number): number;
  emit(output: OutputRecord): void;
  nowMs(): number;
  /** A record the processing exception handler sent to the dead-letter topic. */
  onProcessingError?: (info: ProcessingErrorInfo) => void;
}

export class StreamTask {
  readonly id: string;
  readonly partition: number;
  readonly stores = new Map<string, TaskStore<unknown>>();
  /** Next offset to process per source topic (uncommitted progress). */
  readonly positions = new Map<string, bigint>();
  /** Next offset per source topic as of the last committed transaction. */
  readonly committed = new Map<string, bigint>();
  #state: TaskState = 'CREATED';
  #graph: TaskGraph | undefined;
  readonly #options: TaskOptions;

  constructor(options: TaskOptions) {
    this.#options = options;
    this.partition = options.partition;
    this.id = `task-${options.partition}`;
  }

  get state(): TaskState {
    return this.#state;
  }

  /** Opens every store of the topology (LevelDB, one database per store) in the task folder. */
  async openStores(): Promise<void> {
    this.#assertState('CREATED', 'open stores');
    for (const spec of this.#options.topology.stores()) {
      const dir = path.join(this.#options.dir, spec.name);
      await mkdir(dir, { recursive: true });
      this.stores.set(spec.name, await LevelTaskStore.open(dir, { ...spec }));
    }
    this.#transition('RESTORING');
  }

  /** Deletes one store's files and opens it empty (task corrupted: its state is restored from scratch). */
  async wipeStore(name: string): Promise<TaskStore<unknown>> {
    const store = this.stores.get(name);
    if (!store) throw new Error(`${this.id}: no store ${name}`);
    await store.close();
    const dir = path.join(this.#options.dir, name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const fresh = await LevelTaskStore.open(dir, store.options);
    this.stores.set(name, fresh);
    return fresh;
  }

  /** Restored: builds the processor graph and starts from the committed positions. */
  initialize(committed: Map<string, bigint>): void {
    this.#transition('RUNNING');
    for (const [topic, offset] of committed) {
      this.committed.set(topic, offset);
      this.positions.set(topic, offset);
    }
    this.#graph = new TaskGraph({
      topology: this.#options.topology,
      applicationId: this.#options.applicationId,
      partition: this.partition,
      partitions: this.#options.partitions,
      stores: this.stores,
      partitionsOf: this.#options.partitionsOf,
      partitionForKey: this.#options.partitionForKey,
      emit: this.#options.emit,
      nowMs: this.#options.nowMs,
      ...(this.#options.onProcessingError ? { onProcessingError: this.#options.onProcessingError } : {}),
    });
    this.#graph.init();
  }

  /** Adds the store keys that processing `records` will read to `keys` (per store name). */
  collectKeys(records: FetchedRecord[], keys: Map<string, Set<string>>): void {
    this.#assertState('RUNNING', 'collect keys');
    const graph = this.#graph!;
    for (const r of records) graph.collectPrefetch(r, keys);
  }

  /**
   * Loads collected keys with one multi-get per store, the stores in parallel; every load ends before
   * the first failure is rethrown, so no prefetch is still running when the caller closes the stores.
   */
  async prefetch(keys: Map<string, Set<string>>): Promise<void> {
    await settleAll([...keys].map(([name, set]) => this.stores.get(name)!.prefetch(set)));
  }

  /**
   * Processes fetched records of one source partition: loads every store key the batch reads with one
   * multi-get per store (unless the caller did, `prefetched`: collectKeys and prefetch over these
   * records), then runs the records in offset order. Returns the number processed.
   */
  async process(topic: string, records: FetchedRecord[], nextOffset: bigint, prefetched = false): Promise<number> {
    this.#assertState('RUNNING', 'process');
    const graph = this.#graph!;
    if (!prefetched) {
      const keys = new Map<string, Set<string>>();
      this.collectKeys(records, keys);
      await this.prefetch(keys);
    }
    for (const r of records) {
      graph.process(r);
      this.positions.set(topic, r.offset + 1n);
    }
    const position = this.positions.get(topic) ?? 0n;
    if (nextOffset > position) this.positions.set(topic, nextOffset);
    return records.length;
  }

  async punctuate(nowMs: number): Promise<number> {
    if (this.#state !== 'RUNNING') return 0;
    return this.#graph!.punctuate(nowMs);
  }

  commitNeeded(): boolean {
    for (const [topic, offset] of this.positions) if (this.committed.get(topic) !== offset) return true;
    for (const store of this.stores.values()) if (store.commitNeeded()) return true;
    return false;
  }

  /** After the transaction committed: the positions it carried (taken when it started) become the committed ones. */
  markCommitted(positions: ReadonlyMap<string, bigint>): void {
    for (const [topic, offset] of positions) this.committed.set(topic, offset);
  }

  /**
   * Closes processors and stores without committing (uncommitted writes are dropped: after a failure the
   * task manager closes every task this way, and a clean stop commits first). Keeps the first error.
   */
  async close(): Promise<void> {
    if (this.#state === 'CLOSED') return;
    let first: unknown;
    try {
      this.#graph?.close();
    } catch (error) {
      first = error;
    }
    for (const store of this.stores.values()) {
      try {
        // close() drops uncommitted writes itself, and works on a store that failed closed.
        await store.close();
      } catch (error) {
        first ??= error;
      }
    }
    this.#state = 'CLOSED';
    if (first) throw first;
  }

  #assertState(expected: TaskState, operation: string): void {
    if (this.#state !== expected) throw new IllegalTaskStateError(this.id, this.#state, operation);
  }

  #transition(next: TaskState): void {
    if (!TRANSITIONS[this.#state].includes(next))
      throw new IllegalTaskStateError(this.id, this.#state, `move to ${next}`);
    this.#state = next;
  }
}
