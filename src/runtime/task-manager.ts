// The TaskManager (as in Kafka Streams): this member's assignment and its tasks. It creates, opens,
// restores and closes the active tasks of each generation, keeps the standbys in step with the
// assignment, reads the committed offsets a task starts from (offsets fail closed, src/kafka/offset-reset.ts),
// and tells the assignor what this member runs, keeps warm and has on disk. A corrupted task
// (TaskCorruptedError from the StateManager) has its stores wiped and restored from scratch here.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { type Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type { Logger } from 'pino';
import { partitionForKey } from '../kafka/partitioner.ts';
import type { PartitionStop } from '../streams/status.ts';
import { errorText, type ProcessingErrorInfo } from '../topology/processing-errors.ts';
import type { OutputRecord } from '../topology/task-graph.ts';
import { encodeMemberInfo, splitAssignment } from './assignor.ts';
import { fetchStableOffsets } from '../kafka/committed-offsets.ts';
import type { Assignment, EngineContext } from './engine-options.ts';
import { TaskCorruptedError } from './errors.ts';
import { type FetchPosition, type Fetcher, tpKey } from '../kafka/fetcher.ts';
import { listOffsets } from './list-offsets.ts';
import { decideStart, outOfRangeStop } from '../kafka/offset-reset.ts';
import type { RestoreProgress } from './restore.ts';
import { type StandbyView, StandbyTasks } from './standby.ts';
import type { StateDirectoryCleaner } from './state-cleaner.ts';
import { type StateManager, storesWithData } from './state-manager.ts';
import { StreamTask } from './task.ts';
import type { TopicLayout } from './topic-layout.ts';

export interface TaskManagerOptions {
  /** Which local state folders are warm enough to advertise (state-cleaner.ts). */
  cleaner: StateDirectoryCleaner;
  consumer: Consumer;
  standbyConsumer: Consumer;
  standbyFetcher: Fetcher;
  layout: TopicLayout;
  state: StateManager;
  /** Where a task's outputs go (the task executor's commit buffer). */
  emit(output: OutputRecord, partition: number): void;
}

export class TaskManager {
  readonly #ctx: EngineContext;
  readonly #options: TaskManagerOptions;
  readonly #log: Logger;
  readonly #tasks = new Map<number, StreamTask>();
  readonly #standbys: StandbyTasks;
  /** Partitions (tpKey of each stopped source topic-partition) that do not run, and why. */
  readonly #stopped = new Map<string, PartitionStop>();
  /** The assignment the tasks run under, and the latest one received (they differ until the rebalance). */
  #assigned: Assignment | undefined;
  #latest: Assignment | undefined;
  #restoredRecords = 0;

  constructor(ctx: EngineContext, options: TaskManagerOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.#log = ctx.log;
    const log = ctx.log.child({ component: 'standby' });
    this.#standbys = new StandbyTasks({
      consumer: options.standbyConsumer,
      fetcher: options.standbyFetcher,
      log,
      outage: ctx.brokerHealth.outage('standby', log),
      changelogTopicOf: (store) => options.state.changelogTopic(store),
      createTask: (partition) => this.#createTask(partition),
      ...(ctx.internal.changelogCheck() ? { check: ctx.internal.changelogCheck()! } : {}),
    });
  }

  /** Follows the group's assignments (the next rebalance takes the latest one). */
  watchAssignments(): void {
    this.#options.consumer.on(
      'consumer:group:join',
      (payload: { generationId?: number; assignments?: Array<{ topic: string; partitions: number[] }> }) => {
        const { active, standby } = splitAssignment(payload.assignments ?? []);
        this.#latest = { generationId: payload.generationId ?? -1, partitions: active, standby };
        this.#log.info({ generation: payload.generationId, partitions: active, standby }, 'group assignment received');
      },
    );
  }

  get assigned(): Assignment | undefined {
    return this.#assigned;
  }

  /** A newer assignment than the one the tasks run under (a rebalance to do). */
  get pendingAssignment(): Assignment | undefined {
    return this.#latest && this.#latest !== this.#assigned ? this.#latest : undefined;
  }

  /** True when an assignment arrived after the tasks were assigned: their work cannot be committed. */
  assignmentChanged(): boolean {
    return this.#latest !== this.#assigned;
  }

  /** The tasks run under no assignment any more (a failure); `membership`: the group membership is gone too. */
  forgetAssignment(membership: boolean): void {
    this.#assigned = undefined;
    if (membership) this.#latest = undefined;
  }

  get restoredRecords(): number {
    return this.#restoredRecords;
  }

  active(): IterableIterator<StreamTask> {
    return this.#tasks.values();
  }

  task(partition: number): StreamTask | undefined {
    return this.#tasks.get(partition);
  }

  /** Partitions whose tasks are restored and running on this instance. */
  runningPartitions(): number[] {
    return [...this.#tasks.values()]
      .filter((t) => t.state === 'RUNNING' && !this.isStopped(t.partition))
      .map((t) => t.partition)
      .sort((a, b) => a - b);
  }

  standbyPartitions(): number[] {
    return this.#standbys.partitions();
  }

  standbyLagRecords(): number {
    return this.#standbys.lagRecords();
  }

  standby(partition: number): StandbyView | undefined {
    return this.#standbys.view(partition);
  }

  stopped(): PartitionStop[] {
    return [...this.#stopped.values()];
  }

  /** A new assignment: the stops of the previous one are decided again. */
  clearStopped(): void {
    this.#stopped.clear();
  }

  isStopped(partition: number): boolean {
    if (this.#stopped.size === 0) return false;
    return this.#ctx.topology.sourceTopics().some((topic) => this.#stopped.has(tpKey(topic, partition)));
  }

  /** This member's subscription user data: what it runs, keeps warm and has on disk. */
  memberInfo(): Buffer {
    const { stateDir, applicationId, instanceId } = this.#ctx.options;
    let local: number[] = [];
    try {
      local = readdirSync(path.join(stateDir, applicationId, instanceId))
        .filter((name) => /^\d+$/.test(name))
        .map(Number);
    } catch {
      // No state folder yet.
    }
    return encodeMemberInfo({
      instanceId,
      active: this.#assigned?.partitions ?? [],
      standby: this.standbyPartitions(),
      local: this.#options.cleaner.warmLocal(local),
    });
  }

  /**
   * Opens the tasks of a new assignment (the previous ones are closed): standbys first, then each active
   * task's stores, restored from their changelogs, started from the committed offsets. Returns the
   * changelog records restored.
   */
  async assign(assignment: Assignment): Promise<number> {
    // Active tasks closed first (by the caller): a standby may take over the folder of a partition that moved
    // away, and a standby of a partition that became active here gives its folder (and checkpoint) to the task.
    await this.#standbys.assign(assignment.standby.filter((p) => !assignment.partitions.includes(p)));
    this.#assigned = assignment;
    const tasks: StreamTask[] = [];
    for (const partition of assignment.partitions) {
      const task = this.#createTask(partition);
      await task.openStores();
      this.#tasks.set(partition, task);
      tasks.push(task);
    }
    const committed = await this.#committedOffsets(assignment.partitions);
    this.#ctx.emitStatus();
    const restored = await restoreWithRecovery(this.#options.state, tasks, this.#log);
    this.#restoredRecords += restored.records;
    const earliest = await this.#earliestOffsets(tasks, committed);
    for (const task of tasks) {
      const positions = await this.#startPositions(task, committed, earliest);
      if (positions) task.initialize(positions);
    }
    return restored.records;
  }

  /** Closes every active task (dirty: uncommitted writes are dropped); keeps going past a failing one. */
  async closeAll(): Promise<void> {
    for (const task of this.#tasks.values()) {
      await task
        .close()
        .catch((error: unknown) => this.#log.warn({ err: error, task: task.id }, 'closing task failed'));
    }
    this.#tasks.clear();
  }

  async closeStandbys(): Promise<void> {
    await this.#standbys
      .close()
      .catch((error: unknown) => this.#log.warn({ err: error }, 'closing standby tasks failed'));
  }

  /** Out-of-range positions stop their partitions only; the loop goes on with the others. */
  async stopOutOfRange(positions: FetchPosition[]): Promise<void> {
    const partitions: Record<string, number[]> = {};
    for (const p of positions) (partitions[p.topic] ??= []).push(p.partition);
    const { consumer } = this.#options;
    const [starts, ends] = await Promise.all([
      listOffsets(consumer, partitions, ListOffsetTimestamps.EARLIEST).catch(() => new Map<string, bigint>()),
      listOffsets(consumer, partitions, ListOffsetTimestamps.LATEST).catch(() => new Map<string, bigint>()),
    ]);
    for (const p of positions) {
      const key = tpKey(p.topic, p.partition);
      if (!this.#stopped.has(key))
        this.#stopPartition(
          outOfRangeStop('processor', p.topic, p.partition, p.offset, starts.get(key), ends.get(key)),
        );
    }
    this.#ctx.emitStatus();
  }

  #stopPartition(stop: PartitionStop): void {
    this.#stopped.set(tpKey(stop.topic, stop.partition), stop);
    this.#log.error(
      { topic: stop.topic, partition: stop.partition, code: stop.code, action: stop.action },
      `partition stopped: ${stop.reason}`,
    );
  }

  async #committedOffsets(partitions: number[]): Promise<Map<string, bigint>> {
    if (partitions.length === 0) return new Map();
    const { applicationId, instanceId, connection, transactionTimeoutMs } = this.#ctx.options;
    const topics = new Map(this.#ctx.topology.sourceTopics().map((t) => [t, partitions]));
    return fetchStableOffsets(this.#options.consumer, topics, {
      clientId: `${applicationId}-${instanceId}-offsets`,
      connection: connection ?? {},
      timeoutMs: transactionTimeoutMs * 3,
      retryDelayMs: 50,
    });
  }

  /** Log start offsets of the source partitions that have no committed offset (where "earliest" is). */
  async #earliestOffsets(tasks: StreamTask[], committed: Map<string, bigint>): Promise<Map<string, bigint>> {
    const partitions: Record<string, number[]> = {};
    for (const task of tasks) {
      for (const topic of this.#ctx.topology.sourceTopics())
        if ((committed.get(tpKey(topic, task.partition)) ?? -1n) < 0n) (partitions[topic] ??= []).push(task.partition);
    }
    return listOffsets(this.#options.consumer, partitions, ListOffsetTimestamps.EARLIEST);
  }

  /** The positions a restored task starts from, or undefined (and the task stopped) when it must not start. */
  async #startPositions(
    task: StreamTask,
    committed: Map<string, bigint>,
    earliest: Map<string, bigint>,
  ): Promise<Map<string, bigint> | undefined> {
    const topics = this.#ctx.topology.sourceTopics();
    const committedOf = offsetsOf(committed, topics, task.partition);
    const missing = topics.some((t) => (committedOf.get(t) ?? -1n) < 0n);
    const withData = missing ? await storesWithData(task) : [];
    const decision = decideStart({
      policy: this.#ctx.options.offsetReset,
      group: 'processor',
      partition: task.partition,
      committed: committedOf,
      earliest: offsetsOf(earliest, topics, task.partition),
      topics,
      hasState: withData.length > 0,
      stateDescription: `the task's stores hold data (${withData.join(', ')}, local or restored from the changelogs)`,
    });
    if (!decision.ok) {
      for (const stop of decision.stops) this.#stopPartition(stop);
      return undefined;
    }
    if (missing)
      this.#log.info(
        { task: task.id, positions: Object.fromEntries([...decision.positions].map(([t, o]) => [t, String(o)])) },
        'no committed offsets and no state: a new task starts from the log start',
      );
    return decision.positions;
  }

  #createTask(partition: number): StreamTask {
    const { applicationId, instanceId, stateDir } = this.#ctx.options;
    const { layout } = this.#options;
    return new StreamTask({
      topology: this.#ctx.topology,
      applicationId,
      partition,
      partitions: layout.partitions,
      dir: path.join(stateDir, applicationId, instanceId, String(partition)),
      partitionsOf: (topic) => layout.partitionCountOf(topic),
      partitionForKey,
      emit: (output) => this.#options.emit(output, partition),
      nowMs: () => Date.now(),
      onProcessingError: (info) => this.#onProcessingError(info),
    });
  }

  /** One log line per dead-lettered record (its own position: the record is findable in the DLQ by it). */
  #onProcessingError(info: ProcessingErrorInfo): void {
    const { node, phase, topic, partition, offset } = info;
    this.#log.error(
      { node, phase, topic, partition, offset: offset.toString(), error: errorText(info.error) },
      'processing exception: the record goes to the dead-letter topic and processing continues',
    );
    try {
      this.#ctx.options.onProcessingError?.(info);
    } catch (error) {
      this.#log.warn({ err: error }, 'processing error listener failed');
    }
  }
}

/** Wipes per store and restore, at most: a wiped store restores from offset 0 and cannot be corrupted the same way. */
const WIPES_PER_STORE_MAX = 2;

/**
 * Restores the tasks' stores; a corrupted task (TaskCorruptedError) has the named stores wiped and the
 * restore starts again (those stores from scratch, the others from where they got to). Bounded.
 */
export async function restoreWithRecovery(
  state: StateManager,
  tasks: StreamTask[],
  log: Logger,
): Promise<RestoreProgress> {
  const started = Date.now();
  let records = 0;
  const countRecords = (applied: number) => {
    records += applied;
  };
  const attemptsMax = 1 + WIPES_PER_STORE_MAX * tasks.reduce((sum, task) => sum + task.stores.size, 0);
  for (let attempt = 1; ; attempt++) {
    try {
      await state.restore(tasks, countRecords);
      return { records, elapsedMs: Date.now() - started };
    } catch (error) {
      if (!(error instanceof TaskCorruptedError) || attempt >= attemptsMax) throw error;
      for (const [partition, stores] of error.stores) {
        const task = tasks.find((t) => t.partition === partition);
        if (!task) throw error;
        log.warn(
          { task: task.id, stores, reason: error.message },
          'task corrupted; wiping its stores and restoring them from scratch',
        );
        for (const store of stores) await task.wipeStore(store);
      }
    }
  }
}

/** One partition's offsets per topic, out of offsets keyed by tpKey. */
function offsetsOf(offsets: Map<string, bigint>, topics: string[], partition: number): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const topic of topics) {
    const offset = offsets.get(tpKey(topic, partition));
    if (offset !== undefined) out.set(topic, offset);
  }
  return out;
}
