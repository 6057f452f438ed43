// The TaskExecutor (as in Kafka Streams): runs the active tasks on fetched records and commits them.
//
// A commit has three phases, numbered here and again in the code (#prepare, #commit):
//   1. prepare every task (synchronous, so no processing interleaves): take the outputs, every task's
//      positions, and each store's writes as its committing layer together with their changelog records
//   2. ONE Kafka transaction for all of them:
//      2a. begin (a zombie, fenced by a newer instance with our transactional id, stops here)
//      2b. send the outputs and changelog records
//      2c. add the consumer offsets of every task, fenced by the generation and member id they ran under
//      2d. commit
//   3. post-commit every task:
//      3a. each store writes its committing layer and the changelog offset it reached in ONE batch
//      3b. each task's positions of step 1 become its committed positions
//      3c. report the commit (onCommit)
// Phases 2 and 3 run in the background while the loop processes the next batch into the stores' current
// layers and a fresh output buffer; at most one transaction is in flight, and the next commit waits for it.
import type { Consumer, MessageToProduce } from '@platformatic/kafka';
import { type BankstreamProducer, isProducerFencedError } from '../kafka/producer.ts';
import { isBrokerUnavailable } from '../kafka/retry.ts';
import { sendOffsetsToTransaction, type TransactionOffset } from '../kafka/txn-offsets.ts';
import type { OutputRecord } from '../topology/task-graph.ts';
import {
  changelogOffsets,
  chunkByPartitionBytes,
  type PreparedCommit,
  SEND_PARTITION_BYTES_MAX,
  toMessage,
} from './commit-messages.ts';
import type { Assignment, EngineContext } from './engine-options.ts';
import { fenced, isFencedError, settleAll, TaskMigratedError } from './errors.ts';
import { type FetchedRecord, type FetchRound, type PartitionFetch, recordsOf, tpKey } from '../kafka/fetcher.ts';
import type { StreamTask } from './task.ts';

/** What the executor needs of the task manager. */
export interface ExecutorTasks {
  readonly assigned: Assignment | undefined;
  active(): Iterable<StreamTask>;
  task(partition: number): StreamTask | undefined;
  isStopped(partition: number): boolean;
  assignmentChanged(): boolean;
}

export interface TaskExecutorOptions {
  producer: BankstreamProducer;
  consumer: Consumer;
  tasks: ExecutorTasks;
  changelogTopicOf(store: string): string;
  partitionCountOf(topic: string): number;
  /** After every commit: the loop's failure counters start again. */
  onCommitted(): void;
  /** The engine's fatal error, if any: no transaction starts after it. */
  fatal(): Error | undefined;
  /** The TxnOffsetCommit step (2c); the real one unless a unit test watches the steps. */
  sendOffsets?: typeof sendOffsetsToTransaction;
}

/** The transaction in flight; `promise` never rejects, its failure is kept in `error`. */
interface InflightCommit {
  promise: Promise<void>;
  settled: boolean;
  error: unknown;
}

export class TaskExecutor {
  readonly #ctx: EngineContext;
  readonly #options: TaskExecutorOptions;
  #outputs: OutputRecord[] = [];
  #pendingRecords = 0;
  #lastCommitMs = Date.now();
  #inflight: InflightCommit | undefined;
  #producerId: bigint | undefined;

  constructor(ctx: EngineContext, options: TaskExecutorOptions) {
    this.#ctx = ctx;
    this.#options = options;
  }

  /** A task's output: signed (internal records) and held for the next commit. */
  emit(output: OutputRecord, partition: number): void {
    this.#outputs.push(this.#ctx.internal.sign(output, partition));
  }

  /**
   * Fences zombies with our transactional id before anything else: InitProducerId with the transactional
   * id bumps the epoch and aborts whatever transaction a previous incarnation left open.
   */
  async initProducer(): Promise<void> {
    const { producer } = this.#options;
    const first = await producer.beginTransaction();
    await first.cancel();
    this.#producerId = producer.producerId;
    this.#ctx.log.info(
      { producerId: String(this.#producerId), epoch: producer.producerEpoch },
      'transactional producer initialized',
    );
  }

  /** The commit interval starts again (tasks just started). */
  resetCommitTimer(): void {
    this.#lastCommitMs = Date.now();
  }

  /** Processes in chunks so that no transaction carries more than batchRecordsMax input records. */
  async process(fetched: FetchRound['fetched']): Promise<void> {
    if (this.#pendingRecords + recordsOf({ fetched }) <= this.#ctx.options.batchRecordsMax)
      return this.#processRound(fetched);
    const { tasks } = this.#options;
    for (const part of fetched) {
      let task = tasks.task(part.partition);
      // A stopped task takes nothing more, not even the other source topic's records of this round.
      if (!this.#takes(task, part)) continue;
      let index = 0;
      do {
        const room = Math.max(1, this.#ctx.options.batchRecordsMax - this.#pendingRecords);
        const chunk = part.records.slice(index, index + room);
        index += chunk.length;
        const last = index >= part.records.length;
        // Records of a repartition topic are applied only if they verify; the others become dead letters
        // in the same transaction as the offsets that pass them.
        const { accepted, deadLetters } = this.#ctx.internal.authenticate(part.topic, chunk, (topic) =>
          this.#options.partitionCountOf(topic),
        );
        for (const letter of deadLetters) this.#outputs.push(letter);
        this.#pendingRecords += deadLetters.length;
        this.#pendingRecords += await task.process(
          part.topic,
          accepted,
          last ? part.nextOffset : chunk[chunk.length - 1]!.offset + 1n,
        );
        await this.maybeCommit(false);
        task = tasks.task(part.partition);
        if (task?.state !== 'RUNNING') break;
      } while (index < part.records.length);
    }
  }

  /**
   * A round that fits in the open transaction (a live load's rounds do): every partition's records
   * authenticated, then every task's store keys loaded at once (all tasks and stores in parallel), then
   * the partitions processed in order. One wait for LevelDB's threads per round: loading per partition,
   * the loop sat idle through ~24 reads in turn each round. A partition's dead letters join the
   * transaction only when its records are processed (a task may stop meanwhile), with their offsets.
   */
  async #processRound(fetched: FetchRound['fetched']): Promise<void> {
    const { tasks } = this.#options;
    const work: Array<{
      part: PartitionFetch;
      task: StreamTask;
      accepted: FetchedRecord[];
      deadLetters: OutputRecord[];
    }> = [];
    const keys = new Map<StreamTask, Map<string, Set<string>>>();
    for (const part of fetched) {
      const task = tasks.task(part.partition);
      if (!this.#takes(task, part)) continue;
      const { accepted, deadLetters } = this.#ctx.internal.authenticate(part.topic, part.records, (topic) =>
        this.#options.partitionCountOf(topic),
      );
      let taskKeys = keys.get(task);
      if (taskKeys === undefined) keys.set(task, (taskKeys = new Map()));
      task.collectKeys(accepted, taskKeys);
      work.push({ part, task, accepted, deadLetters });
    }
    await settleAll([...keys].map(([task, taskKeys]) => task.prefetch(taskKeys)));
    for (const { part, task, accepted, deadLetters } of work) {
      if (tasks.task(part.partition) !== task || !this.#takes(task, part)) continue;
      for (const letter of deadLetters) this.#outputs.push(letter);
      this.#pendingRecords += deadLetters.length;
      this.#pendingRecords += await task.process(part.topic, accepted, part.nextOffset, true);
    }
  }

  /** A stopped task takes nothing more; a partition with no records takes only a position that moved. */
  #takes(task: StreamTask | undefined, part: PartitionFetch): task is StreamTask {
    if (task?.state !== 'RUNNING' || this.#options.tasks.isStopped(part.partition)) return false;
    return part.records.length > 0 || part.nextOffset > (task.positions.get(part.topic) ?? 0n);
  }

  /**
   * Commits when due: commitIntervalMs passed, batchRecordsMax records pending, forced, or (with
   * commitWhenCaughtUp) `caughtUp`: the loop processed every fetched partition up to its last stable
   * offset, so nothing is gained by waiting for more input, and records pending. While a transaction is
   * in flight, processing goes on until the next one is full (or forced); then it waits for the one in
   * flight, which also surfaces its failure here, in the loop. So under a steady live load commits follow
   * each other as fast as they complete, each taking what arrived meanwhile (a group commit), and a
   * record waits for about one commit instead of the interval and a commit.
   */
  async maybeCommit(force: boolean, caughtUp = false): Promise<void> {
    if (this.#inflight?.settled) await this.#awaitCommit();
    const now = Date.now();
    for (const task of this.#options.tasks.active()) await task.punctuate(now);
    const { batchRecordsMax, commitIntervalMs, commitWhenCaughtUp } = this.#ctx.options;
    const full = this.#pendingRecords >= batchRecordsMax;
    const due =
      force ||
      full ||
      now - this.#lastCommitMs >= commitIntervalMs ||
      (caughtUp && commitWhenCaughtUp && this.#pendingRecords > 0);
    if (!due) return;
    if (this.#inflight && !force && !full) return;
    await this.#awaitCommit();
    this.#lastCommitMs = Date.now();
    this.#startCommit();
    if (force) await this.#awaitCommit();
  }

  /**
   * Failure paths: the transaction in flight ends (committed and flushed, or failed), then everything
   * uncommitted is dropped and the open transaction aborted; the caller closes the tasks after.
   */
  async abort(): Promise<void> {
    await this.#settleCommit();
    this.#outputs = [];
    this.#pendingRecords = 0;
    const transaction = this.#options.producer.transaction;
    if (transaction && !transaction.completed) {
      await transaction.abort().catch(async (error: unknown) => {
        // Fencing here is checked by the next InitProducerId (see the stream thread), not taken as fatal.
        if (!isBrokerUnavailable(error)) this.#ctx.log.warn({ err: error }, 'abort failed');
        // The client keeps a transaction whose EndTxn failed as the active one and refuses the next
        // beginTransaction. Dropped locally: the next transaction starts with an epoch bump (producer.ts,
        // trap 6), which makes the coordinator abort this one.
        if (!transaction.completed) await transaction.cancel().catch(() => undefined);
      });
    }
  }

  /** Waits for the transaction in flight; rethrows its failure. */
  async #awaitCommit(): Promise<void> {
    const inflight = this.#inflight;
    if (!inflight) return;
    await inflight.promise;
    this.#inflight = undefined;
    if (inflight.error !== undefined) throw inflight.error;
  }

  async #settleCommit(): Promise<void> {
    const inflight = this.#inflight;
    if (!inflight) return;
    await inflight.promise;
    this.#inflight = undefined;
    if (inflight.error === undefined) return;
    this.#ctx.log.warn({ err: inflight.error }, 'the transaction in flight failed');
  }

  /** Step 1 now; steps 2 and 3 in the background (their failure is kept for #awaitCommit). */
  #startCommit(): void {
    const { tasks } = this.#options;
    const ready = [...tasks.active()].filter((t) => t.state === 'RUNNING' && t.commitNeeded());
    if (ready.length === 0 && this.#outputs.length === 0) return;
    if (tasks.assignmentChanged()) throw new TaskMigratedError('a rebalance happened since the tasks were assigned');
    const prepared = this.#prepare(ready);
    const inflight: InflightCommit = { promise: Promise.resolve(), settled: false, error: undefined };
    inflight.promise = this.#commit(prepared).then(
      () => {
        inflight.settled = true;
      },
      (error: unknown) => {
        inflight.error = error;
        inflight.settled = true;
      },
    );
    this.#inflight = inflight;
  }

  /** 1. Prepare every task: outputs, positions, and each store's committing layer with its changelog records. */
  #prepare(tasks: StreamTask[]): PreparedCommit {
    const startedMs = Date.now();
    const messages: MessageToProduce[] = this.#outputs.map(toMessage);
    const prepared: PreparedCommit = {
      startedMs,
      generationId: this.#options.tasks.assigned!.generationId,
      records: this.#pendingRecords,
      outputs: this.#outputs.length,
      messages,
      changelogCounts: new Map(),
      flushes: [],
      positions: tasks.map((task) => ({ task, positions: new Map(task.positions) })),
    };
    this.#outputs = [];
    this.#pendingRecords = 0;
    for (const task of tasks) {
      for (const [name, store] of task.stores) {
        if (!store.commitNeeded()) continue;
        const entries = store.prepareCommit();
        prepared.flushes.push({ task, name, store });
        if (!store.options.logged) continue;
        const topic = this.#options.changelogTopicOf(name);
        for (const e of entries) {
          const key = Buffer.from(e.key, 'utf8');
          const headers = this.#ctx.internal.changelogHeaders(name, task.partition, key, e.value);
          messages.push({
            topic,
            partition: task.partition,
            key,
            value: e.value ?? undefined,
            timestamp: BigInt(startedMs),
            ...(headers ? { headers } : {}),
          });
        }
        prepared.changelogCounts.set(tpKey(topic, task.partition), { task, store: name, count: entries.length });
      }
    }
    return prepared;
  }

  /** 2. One transaction, then 3. post-commit every task. */
  async #commit(prepared: PreparedCommit): Promise<void> {
    const fatal = this.#options.fatal();
    if (fatal) throw fatal;
    // 2a. After a failed transaction this sends InitProducerId with our producer id and epoch: refused
    // (PRODUCER_FENCED) only when a newer instance with the same transactional id took over.
    const transaction = await this.#options.producer.beginTransaction().catch((error: unknown) => {
      throw isFencedError(error) || isProducerFencedError(error) ? fenced(error) : error;
    });
    this.#assertNotFenced();
    // 2b. One send per chunk: the client puts a partition's messages of one send into one record batch,
    // which the broker refuses beyond message.max.bytes (1 MiB by default).
    const offsets: Array<{ topic: string; partition: number; offset: bigint }> = [];
    for (const chunk of chunkByPartitionBytes(prepared.messages, SEND_PARTITION_BYTES_MAX)) {
      const result = await transaction.send({ messages: chunk });
      offsets.push(...(result.offsets ?? []));
    }
    // 2c.
    await this.#addOffsets(prepared);
    // 2d.
    await transaction.commit();
    // 3a. One database per store: their batches go to LevelDB's threads together. Every flush ends before
    // the first error is rethrown, so none is still writing when the failure path closes the stores.
    const nextChangelog = changelogOffsets(offsets, prepared.changelogCounts);
    await settleAll(
      prepared.flushes.map(({ task, name, store }) =>
        store.flush(store.options.logged ? (nextChangelog.get(`${task.partition}/${name}`) ?? null) : null),
      ),
    );
    // 3b.
    for (const { task, positions } of prepared.positions) task.markCommitted(positions);
    // 3c.
    this.#options.onCommitted();
    this.#ctx.options.onCommit?.({
      records: prepared.records,
      outputs: prepared.outputs,
      durationMs: Date.now() - prepared.startedMs,
    });
  }

  /**
   * The client forgets its producer id when it sees a fencing error, and its next transaction would
   * call InitProducerId again, fencing the NEWER instance in turn. A zombie must stop instead.
   */
  #assertNotFenced(): void {
    const current = this.#options.producer.producerId;
    if (current === undefined || current !== this.#producerId) {
      throw fenced(new Error(`producer id changed from ${this.#producerId} to ${current}`));
    }
  }

  /**
   * 2c. One TxnOffsetCommit for every partition (the client's addOffset merges concurrent calls), fenced by
   * the generation the tasks were assigned under: a stale member's commit fails with ILLEGAL_GENERATION.
   */
  async #addOffsets(prepared: PreparedCommit): Promise<void> {
    const offsets: TransactionOffset[] = [];
    for (const { task, positions } of prepared.positions) {
      for (const [topic, offset] of positions) offsets.push({ topic, partition: task.partition, offset });
    }
    const { consumer, producer } = this.#options;
    const group = {
      groupId: consumer.groupId,
      generationId: prepared.generationId,
      ...this.#ctx.membership.commitMember(consumer),
    };
    const send = this.#options.sendOffsets ?? sendOffsetsToTransaction;
    await send(producer, consumer, offsets, { group, timeoutMs: this.#ctx.options.transactionTimeoutMs });
  }
}
