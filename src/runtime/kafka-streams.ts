// KafkaStreams: runs a Topology on Kafka with exactly-once semantics (EOS v2, KIP-447). A small facade,
// as Kafka Streams' own: options, start and close, state and status, and the read access the HTTP API
// needs. The work is done by its parts, in the order one record meets them:
//   stream-thread.ts   the loop: group membership, rebalances, fetches, failures and their recovery
//   task-manager.ts    the assignment and its tasks: create, restore, start positions, close; standbys
//   task-executor.ts   processing and the three-phase commit (prepare, ONE transaction, post-commit)
//   state-manager.ts   changelog names, checkpoints, restore planning (a corrupted task: TaskCorruptedError)
// One consumer (read_committed, no autocommit, co-partitioned assignment) and one transactional producer
// (transactional.id = <appId>-<instanceId>) per instance (engine-clients.ts).
import path from 'node:path';
import type { Logger } from 'pino';
import { BrokerHealth, type BrokerOutage } from '../kafka/retry.ts';
import type { PartitionLag, StreamsListener, StreamsState, StreamsStatus, StreamsView } from '../streams/status.ts';
import type { Topology } from '../topology/topology.ts';
import { createEngineClients } from './engine-clients.ts';
import {
  type EngineContext,
  type KafkaStreamsOptions,
  type ResolvedOptions,
  resolveOptions,
} from './engine-options.ts';
import { FatalStreamsError } from './errors.ts';
import { InternalRecords } from './internal-records.ts';
import { GroupMembership } from './membership.ts';
import type { StandbyView } from './standby.ts';
import { StateDirectoryCleaner } from './state-cleaner.ts';
import { StateManager } from './state-manager.ts';
import { StreamThread } from './stream-thread.ts';
import type { StreamTask } from './task.ts';
import { TaskExecutor } from './task-executor.ts';
import { TaskManager } from './task-manager.ts';
import { TopicLayout } from './topic-layout.ts';

export { chunkByPartitionBytes } from './commit-messages.ts';
export type { KafkaStreamsOptions } from './engine-options.ts';
export type { PartitionLag, StreamsListener, StreamsState, StreamsStatus } from '../streams/status.ts';

export class KafkaStreams implements StreamsView {
  readonly #topology: Topology;
  readonly #options: ResolvedOptions;
  readonly #log: Logger;
  readonly #ctx: EngineContext;
  readonly #internal: InternalRecords;
  readonly #brokerHealth: BrokerHealth;
  readonly #outage: BrokerOutage;
  readonly #listeners = new Set<StreamsListener>();
  readonly #layout = new TopicLayout();
  #tasks: TaskManager | undefined;
  #thread: StreamThread | undefined;

  constructor(topology: Topology, options: KafkaStreamsOptions) {
    this.#topology = topology.validate();
    this.#options = resolveOptions(options);
    this.#log = options.logger.child({ component: 'streams', instance: options.instanceId });
    if (!options.clusterKeys)
      throw new FatalStreamsError(
        'cluster_keys_missing',
        'the stream processor requires the cluster keys (CLUSTER_SECRET)',
      );
    this.#internal = new InternalRecords({
      keys: options.clusterKeys,
      topology: this.#topology,
      log: this.#log,
      ...(options.recordAuth ? { auth: options.recordAuth } : {}),
      ...(options.internalRecordMacs === false ? { enabled: false } : {}),
    });
    this.#brokerHealth = options.brokerHealth ?? new BrokerHealth(this.#log);
    this.#outage = this.#brokerHealth.outage('streams', this.#log);
    this.#ctx = {
      membership: new GroupMembership({ ...this.#options, log: this.#log }),
      topology: this.#topology,
      options: this.#options,
      log: this.#log,
      internal: this.#internal,
      brokerHealth: this.#brokerHealth,
      outage: this.#outage,
      stop: new AbortController(),
      state: 'CREATED',
      emitStatus: () => this.#emitStatus(),
    };
  }

  /** The broker outages of this engine's parts (and of whatever else shares it: the sink, the API's tails). */
  get brokerHealth(): BrokerHealth {
    return this.#brokerHealth;
  }

  get state(): StreamsState {
    return this.#ctx.state;
  }

  status(): StreamsStatus {
    const tasks = this.#tasks;
    return {
      state: this.#ctx.state,
      generationId: tasks?.assigned?.generationId,
      assigned: tasks?.assigned ? [...tasks.assigned.partitions] : [],
      running: this.runningPartitions(),
      standby: tasks?.standbyPartitions() ?? [],
      standbyLagRecords: tasks?.standbyLagRecords() ?? 0,
      restoredRecords: tasks?.restoredRecords ?? 0,
      stopped: tasks?.stopped() ?? [],
      internalRecords: this.#internal.status(),
      brokerUnavailableSinceMs: this.#outage.unavailable?.sinceMs,
      membership: this.#ctx.membership.status(),
    };
  }

  /** Called on every change of state or of the running tasks (rebalance, restore done, stop). */
  onStatus(listener: StreamsListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emitStatus(): void {
    const status = this.status();
    for (const listener of this.#listeners) {
      try {
        listener(status);
      } catch (error) {
        this.#log.warn({ err: error }, 'status listener failed');
      }
    }
  }

  /** Partitions whose tasks are restored and running on this instance. */
  runningPartitions(): number[] {
    return this.#tasks?.runningPartitions() ?? [];
  }

  /** Read access to a running task's store for interactive queries (committed + uncommitted state). */
  task(partition: number): StreamTask | undefined {
    return this.#tasks?.task(partition);
  }

  /** Consumer lag of every running task's source partitions, as of the last fetch of each. */
  lag(): PartitionLag[] {
    return this.#thread?.lag() ?? [];
  }

  /** A standby task's stores for a stale read (allowStale), with its lag; undefined without one. */
  standby(partition: number): StandbyView | undefined {
    return this.#tasks?.standby(partition);
  }

  get partitions(): number {
    return this.#layout.partitions;
  }

  async start(): Promise<void> {
    this.#ctx.state = 'STARTING';
    const ctx = this.#ctx;
    const clients = createEngineClients(this.#options, () => tasks.memberInfo(), ctx.membership);
    // The standby consumer never joins a group, so today's client does not emit 'error' on it; a listener
    // all the same, as on every other client, so that a later client version cannot make it crash the process.
    clients.standbyConsumer.on('error', (error: Error) => this.#log.warn({ err: error }, 'standby consumer error'));
    const state = new StateManager({
      applicationId: this.#options.applicationId,
      topology: this.#topology,
      consumer: clients.consumer,
      fetcher: clients.fetcher,
      log: this.#log,
      catchUpMs: this.#options.transactionTimeoutMs * 2,
      ...(this.#internal.changelogCheck() ? { check: this.#internal.changelogCheck()! } : {}),
    });
    const {
      stateDir,
      applicationId,
      instanceId,
      stateCleanupDelayMs,
      acceptableRecoveryLag,
      recoveryLagMeasureTimeoutMs,
    } = this.#options;
    // One cleaner: the loop sweeps and measures with it, member info advertises only the folders it found warm.
    const cleaner = new StateDirectoryCleaner({
      appDir: path.join(stateDir, applicationId),
      instanceId,
      cleanupDelayMs: stateCleanupDelayMs,
      recovery: {
        acceptableLagRecords: acceptableRecoveryLag,
        measureTimeoutMs: recoveryLagMeasureTimeoutMs,
        changelogEndOffsets: (p) => state.changelogEndOffsets(p),
      },
    });
    const tasks: TaskManager = new TaskManager(ctx, {
      cleaner,
      consumer: clients.consumer,
      standbyConsumer: clients.standbyConsumer,
      standbyFetcher: clients.standbyFetcher,
      layout: this.#layout,
      state,
      emit: (output, partition) => executor.emit(output, partition),
    });
    const executor: TaskExecutor = new TaskExecutor(ctx, {
      producer: clients.producer,
      consumer: clients.consumer,
      tasks,
      changelogTopicOf: (store) => state.changelogTopic(store),
      partitionCountOf: (topic) => this.#layout.partitionCountOf(topic),
      onCommitted: () => thread.committed(),
      fatal: () => thread.fatal,
    });
    const thread: StreamThread = new StreamThread(ctx, {
      clients,
      layout: this.#layout,
      state,
      tasks,
      executor,
      cleaner,
    });
    this.#tasks = tasks;
    this.#thread = thread;
    await thread.start();
  }

  /** Stops gracefully: commits what is processed, closes tasks, leaves the group, closes clients. */
  async close(): Promise<void> {
    if (this.#thread) await this.#thread.close();
    else {
      this.#ctx.stop.abort();
      this.#ctx.state = 'STOPPED';
      this.#emitStatus();
    }
    const fatal = this.#thread?.fatal;
    if (fatal) throw fatal;
  }

  /** Resolves when the loop ends (fatal error or close); rejects with the fatal error. */
  async done(): Promise<void> {
    await this.#thread?.done();
    const fatal = this.#thread?.fatal;
    if (fatal) throw fatal;
  }
}
