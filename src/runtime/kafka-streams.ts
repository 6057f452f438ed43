// KafkaStreams: runs a Topology on Kafka with exactly-once semantics (EOS v2, KIP-447).
//
// One consumer (read_committed, no autocommit, co-partitioned assignment) and one transactional producer
// (transactional.id = <appId>-<instanceId>) per instance. The loop:
//   1. fetch a batch for every running task (the next fetch is started before the batch is processed)
//   2. process it: per task, one multi-get per store for the batch's keys, then records in offset order
//   3. when commitIntervalMs has passed or batchRecordsMax records are pending, commit (see #startCommit):
//      the transaction runs in the background while the loop goes on with the next batch; at most
//      one transaction is in flight, and the next commit waits for it
// Any commit failure, fencing or rebalance: wait for the transaction in flight, abort, drop every
// uncommitted cache (both store layers), close the tasks, re-open them for the current assignment
// (restore from changelogs), resume from committed offsets.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Consumer, type ConnectionOptions, ListOffsetTimestamps, type MessageToProduce } from '@platformatic/kafka';
import type { Logger } from 'pino';
import type { ClusterKeys } from '../config/cluster-key.ts';
import { createTransactionalProducer, type KafkaSecurityOptions } from '../kafka/clients.ts';
import { partitionForKey } from '../kafka/partitioner.ts';
import { type BankstreamProducer, isProducerFencedError } from '../kafka/producer.ts';
import {
  backoffDelayMs,
  BROKER_BACKOFF,
  BrokerHealth,
  type BrokerOutage,
  isBrokerUnavailable,
  permanentKafkaError,
  retryUntilStopped,
  sleepUnlessStopped,
  StoppedError,
} from '../kafka/retry.ts';
import { sendOffsetsToTransaction, type TransactionOffset } from '../kafka/txn-offsets.ts';
import type { TaskStore } from '../stores/types.ts';
import { errorText, ProcessingError, type ProcessingErrorInfo } from '../topology/processing-errors.ts';
import type { OutputRecord } from '../topology/task-graph.ts';
import type { Topology } from '../topology/topology.ts';
import {
  createCopartitionedAssigner,
  encodeMemberInfo,
  LEGACY_PROTOCOL_NAME,
  PROTOCOL_NAME,
  splitAssignment,
} from './assignor.ts';
import { fetchStableOffsets } from '../kafka/committed-offsets.ts';
import { FatalStreamsError, isFencedError, isMigratedError, TaskMigratedError } from './errors.ts';
import { type FetchPosition, Fetcher, type FetchRound, tpKey } from '../kafka/fetcher.ts';
import { type InternalRecordsStatus, InternalRecords } from './internal-records.ts';
import { decideStart, type OffsetResetPolicy, outOfRangeStop, type PartitionStop } from '../kafka/offset-reset.ts';
import type { RecordAuthOptions } from './record-auth.ts';
import { GroupMembership, type MembershipStatus } from './membership.ts';
import { restoreTasks } from './restore.ts';
import { type StandbyView, StandbyTasks } from './standby.ts';
import { StateDirectoryCleaner } from './state-cleaner.ts';
import { StreamTask } from './task.ts';

export interface KafkaStreamsOptions {
  applicationId: string;
  instanceId: string;
  brokers: string[];
  stateDir: string;
  commitIntervalMs: number;
  batchRecordsMax: number;
  logger: Logger;
  connection?: ConnectionOptions;
  /** Transaction timeout; @platformatic/kafka sends its request `timeout` as the transaction timeout. */
  transactionTimeoutMs?: number;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /**
   * Join with group.instance.id = instanceId (KIP-345; membership.ts). Default false, as Kafka's
   * group.instance.id; bankstream's configuration turns it on (STATIC_MEMBERSHIP, default true).
   */
  staticMembership?: boolean;
  /** A static member leaves the group when it stops (scale-down); default false: a restart keeps its partitions. */
  leaveGroupOnClose?: boolean;
  fetchMaxWaitMs?: number;
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
  /** Upgrade and incident switches for internal-record authentication (see record-mac.ts). */
  recordAuth?: RecordAuthOptions;
  /** false only for the bench's A/B measure of the MACs' cost (nothing signed or checked); never from configuration. */
  internalRecordMacs?: boolean;
  /** Where this instance's broker outages are reported (/readyz, metrics); one of its own by default. */
  brokerHealth?: BrokerHealth;
  /** How long a task state folder stays after it was last in use here (state-cleaner.ts); default 10 min. */
  stateCleanupDelayMs?: number;
  /** Changelog records an unassigned state folder may be behind and still be kept as warm (default 10,000). */
  acceptableRecoveryLag?: number;
  /** Called with the folders each state cleanup deleted (metrics). */
  onStateCleanup?: (deleted: string[]) => void;
}

/** How often unused state folders are looked for, at most (ms). */
const STATE_CLEANUP_INTERVAL_MS = 60_000;
const STATE_CLEANUP_DELAY_MS_DEFAULT = 600_000;
const ACCEPTABLE_RECOVERY_LAG_DEFAULT = 10_000;

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
  /** Static membership, the generation, rebalances by cause and time without an assignment (membership.ts). */
  membership: MembershipStatus;
}

export type StreamsListener = (status: StreamsStatus) => void;

/** Committed records of a source partition not processed yet (last stable offset seen by the last fetch − position). */
export interface PartitionLag {
  topic: string;
  partition: number;
  records: number;
}

export type StreamsState = 'CREATED' | 'STARTING' | 'REBALANCING' | 'RUNNING' | 'STOPPING' | 'STOPPED' | 'FAILED';

/**
 * Failures in a row (without a successful commit in between) after which the instance stops. Broker
 * outages do not count: they are waited out (src/kafka/retry.ts), however long they last.
 */
const MAX_CONSECUTIVE_FAILURES = 10;

type ResolvedOptions = Required<
  Omit<
    KafkaStreamsOptions,
    'connection' | 'onCommit' | 'onProcessingError' | 'recordAuth' | 'internalRecordMacs' | 'brokerHealth'
  >
> &
  Pick<KafkaStreamsOptions, 'connection' | 'onCommit' | 'onProcessingError' | 'recordAuth' | 'internalRecordMacs'>;

interface Assignment {
  generationId: number;
  partitions: number[];
  standby: number[];
}

/** What one transaction carries, fixed when the commit starts: later processing cannot change it. */
interface PreparedCommit {
  startedMs: number;
  /** The generation the tasks were processed under (their offsets are fenced by it). */
  generationId: number;
  records: number;
  outputs: number;
  messages: MessageToProduce[];
  changelogCounts: Map<string, { task: StreamTask; store: string; count: number }>;
  /** The stores whose committing layer this transaction writes. */
  flushes: Array<{ task: StreamTask; name: string; store: TaskStore<unknown> }>;
  /** Each task's positions when the commit started: the offsets the transaction commits. */
  positions: Array<{ task: StreamTask; positions: Map<string, bigint> }>;
}

/** The transaction in flight; `promise` never rejects, its failure is kept in `error`. */
interface InflightCommit {
  promise: Promise<void>;
  settled: boolean;
  error: unknown;
}

export class KafkaStreams {
  readonly #topology: Topology;
  readonly #options: ResolvedOptions;
  readonly #log: Logger;
  readonly #tasks = new Map<number, StreamTask>();
  readonly #partitionCounts = new Map<string, number>();
  #consumer!: Consumer;
  #producer!: BankstreamProducer;
  #fetcher!: Fetcher;
  #standbys: StandbyTasks | undefined;
  /**
   * The standbys fetch with their own client, so with their own connections: a broker answers one request
   * per connection at a time, and a standby's fetch waiting for changelog data would hold up the
   * processing loop's fetches on a shared connection.
   */
  #standbyConsumer: Consumer | undefined;
  #outputs: OutputRecord[] = [];
  #pendingRecords = 0;
  #lastCommitMs = Date.now();
  #state: StreamsState = 'CREATED';
  #assigned: Assignment | undefined;
  #latest: Assignment | undefined;
  #fetchEpoch = 0;
  #loop: Promise<void> | undefined;
  #stateCleaner: StateDirectoryCleaner | undefined;
  #stateCleanedAtMs = Number.NEGATIVE_INFINITY;
  #stopRequested = false;
  #fatal: Error | undefined;
  #partitions = 0;
  #producerId: bigint | undefined;
  #restoredRecords = 0;
  #consecutiveFailures = 0;
  #inflight: InflightCommit | undefined;
  readonly #listeners = new Set<StreamsListener>();
  readonly #internal: InternalRecords;
  readonly #brokerHealth: BrokerHealth;
  readonly #outage: BrokerOutage;
  /** Aborted by close(): ends every wait for the broker. */
  readonly #stop = new AbortController();
  /** Broker failures in a row seen by the loop (the backoff's attempt number). */
  #brokerFailures = 0;
  /** The client gave up rejoining the group (see #watchMembership): the loop rejoins itself. */
  #membershipLost = false;
  /** Since when the consumer has not been an active member (no heartbeat scheduled); undefined while it is. */
  #inactiveSinceMs: number | undefined;
  readonly #membership: GroupMembership;

  constructor(topology: Topology, options: KafkaStreamsOptions) {
    this.#topology = topology.validate();
    this.#options = {
      transactionTimeoutMs: 10_000,
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 1000,
      fetchMaxWaitMs: 50,
      standbyReplicas: 0,
      offsetReset: 'safe',
      staticMembership: false,
      leaveGroupOnClose: false,
      ...options,
    } as ResolvedOptions;
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
    this.#membership = new GroupMembership({ ...this.#options, log: this.#log });
  }

  /** The broker outages of this engine's parts (and of whatever else shares it: the sink, the API's tails). */
  get brokerHealth(): BrokerHealth {
    return this.#brokerHealth;
  }

  get state(): StreamsState {
    return this.#state;
  }

  status(): StreamsStatus {
    return {
      state: this.#state,
      generationId: this.#assigned?.generationId,
      assigned: this.#assigned ? [...this.#assigned.partitions] : [],
      running: this.runningPartitions(),
      standby: this.#standbys?.partitions() ?? [],
      standbyLagRecords: this.#standbys?.lagRecords() ?? 0,
      restoredRecords: this.#restoredRecords,
      stopped: [...this.#stopped.values()],
      internalRecords: this.#internal.status(),
      brokerUnavailableSinceMs: this.#outage.unavailable?.sinceMs,
      membership: this.#membership.status(),
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
    return [...this.#tasks.values()]
      .filter((t) => t.state === 'RUNNING' && !this.#isStopped(t.partition))
      .map((t) => t.partition)
      .sort((a, b) => a - b);
  }

  /** Read access to a running task's store for interactive queries (committed + uncommitted state). */
  task(partition: number): StreamTask | undefined {
    return this.#tasks.get(partition);
  }

  /** Consumer lag of every running task's source partitions, as of the last fetch of each. */
  lag(): PartitionLag[] {
    const out: PartitionLag[] = [];
    for (const task of this.#tasks.values()) {
      if (task.state !== 'RUNNING') continue;
      for (const [topic, position] of task.positions) {
        const end = this.#stableEnds.get(tpKey(topic, task.partition));
        if (end !== undefined)
          out.push({ topic, partition: task.partition, records: Number(end > position ? end - position : 0n) });
      }
    }
    return out;
  }

  /** A standby task's stores for a stale read (allowStale), with its lag; undefined without one. */
  standby(partition: number): StandbyView | undefined {
    return this.#standbys?.view(partition);
  }

  get partitions(): number {
    return this.#partitions;
  }

  async start(): Promise<void> {
    this.#state = 'STARTING';
    const { applicationId, instanceId, brokers, connection } = this.#options;
    const base = {
      bootstrapBrokers: brokers,
      ...(connection ?? {}),
      timeout: this.#options.transactionTimeoutMs,
      retries: 3,
    };
    this.#producer = createTransactionalProducer({
      bootstrapBrokers: brokers,
      clientId: `${applicationId}-${instanceId}-producer`,
      transactionalId: `${applicationId}-${instanceId}`,
      transactionTimeoutMs: this.#options.transactionTimeoutMs,
      requestTimeoutMs: this.#options.transactionTimeoutMs * 3,
      // CONCURRENT_TRANSACTIONS answers AddPartitionsToTxn while the broker still writes the previous
      // transaction's markers; the Java client retries it every 20 ms, so do we, for up to ~2 s.
      retries: 100,
      retryDelayMs: 20,
      ...(connection ? { security: connection as KafkaSecurityOptions } : {}),
    });
    this.#consumer = new Consumer({
      ...base,
      clientId: `${applicationId}-${instanceId}-consumer`,
      groupId: applicationId,
      ...this.#membership.consumerOptions(),
      autocommit: false,
      isolationLevel: 1,
      sessionTimeout: this.#options.sessionTimeoutMs,
      rebalanceTimeout: Math.max(30_000, this.#options.sessionTimeoutMs),
      heartbeatInterval: this.#options.heartbeatIntervalMs,
      // Each member tells the leader what it runs, keeps warm and has on disk (see assignor.ts). The
      // previous protocol name second: during a rolling upgrade the group agrees on it until every member
      // speaks the new one (the leader always plans with this assignor's code, whichever name is chosen).
      protocols: [
        { name: PROTOCOL_NAME, version: 1 },
        { name: LEGACY_PROTOCOL_NAME, version: 1 },
      ],
      protocolsMetadata: () => this.#memberInfo(),
      partitionAssigner: createCopartitionedAssigner(this.#options.standbyReplicas),
    });
    this.#fetcher = new Fetcher(this.#consumer, {
      maxWaitMs: this.#options.fetchMaxWaitMs,
      minBytes: 1,
      maxBytes: 16 * 1024 * 1024,
      partitionMaxBytes: 2 * 1024 * 1024,
    });
    // Never joins the group: it only fetches changelogs and lists their offsets.
    this.#standbyConsumer = new Consumer({
      ...base,
      clientId: `${applicationId}-${instanceId}-standby`,
      groupId: `${applicationId}-${instanceId}-standby`,
      autocommit: false,
      isolationLevel: 1,
    });
    this.#standbys = new StandbyTasks({
      consumer: this.#standbyConsumer,
      // Waits longer on a quiet changelog than the processing loop does.
      fetcher: new Fetcher(this.#standbyConsumer, {
        maxWaitMs: 250,
        minBytes: 1,
        maxBytes: 16 * 1024 * 1024,
        partitionMaxBytes: 2 * 1024 * 1024,
      }),
      log: this.#log.child({ component: 'standby' }),
      outage: this.#brokerHealth.outage('standby', this.#log.child({ component: 'standby' })),
      changelogTopicOf: (store) => `${this.#options.applicationId}-${store}-changelog`,
      createTask: (partition) => this.#createTask(partition),
      ...(this.#internal.changelogCheck() ? { check: this.#internal.changelogCheck()! } : {}),
    });
    // Every broker wait of the start is retried until the broker answers or close() is called: an
    // instance starting while the broker restarts waits for it (issue 17), it does not exit.
    await this.#untilBrokerAnswers('metadata', () => this.#checkTopics());
    // Fence zombies with our transactional id before anything else: InitProducerId with the
    // transactional id bumps the epoch and aborts whatever transaction a previous incarnation left open.
    await this.#untilBrokerAnswers('initProducerId', async () => {
      const first = await this.#producer.beginTransaction();
      await first.cancel();
    });
    this.#producerId = this.#producer.producerId;
    this.#log.info(
      { producerId: String(this.#producerId), epoch: this.#producer.producerEpoch },
      'transactional producer initialized',
    );
    this.#consumer.on(
      'consumer:group:join',
      (payload: { generationId?: number; assignments?: Array<{ topic: string; partitions: number[] }> }) => {
        const { active, standby } = splitAssignment(payload.assignments ?? []);
        this.#latest = { generationId: payload.generationId ?? -1, partitions: active, standby };
        this.#log.info({ generation: payload.generationId, partitions: active, standby }, 'group assignment received');
      },
    );
    this.#consumer.on('error', (error: Error) => this.#log.warn({ err: error }, 'consumer error'));
    this.#membership.attach(this.#consumer);
    this.#watchMembership();
    this.#consumer.topics.trackAll(...this.#topology.sourceTopics());
    await this.#joinGroup();
    this.#loop = this.#run();
  }

  /** Runs a broker step until it succeeds; errors that waiting cannot heal end it (as FatalStreamsError when they are Kafka's). */
  #untilBrokerAnswers<T>(step: string, run: () => Promise<T>): Promise<T> {
    const security = this.#options.connection as KafkaSecurityOptions | undefined;
    return retryUntilStopped(run, {
      step,
      outage: this.#outage,
      signal: this.#stop.signal,
      permanent: (error) => {
        const fatal = permanentKafkaError(error, security);
        if (!fatal || fatal instanceof FatalStreamsError || fatal instanceof StoppedError) return fatal;
        return new FatalStreamsError((fatal as { code?: string }).code ?? 'kafka_fatal', fatal.message, {
          cause: error,
        });
      },
    });
  }

  /**
   * JoinGroup (and its SyncGroup), retried until the broker answers. The client retries a JoinGroup
   * `retries` times on its own (#retryJoinGroup in its consumer.js) and then gives up; we start it again.
   */
  async #joinGroup(): Promise<void> {
    // Folders measured too far behind their changelogs are not advertised as warm (#memberInfo).
    await this.#cleaner().measureLocal(new Set(this.#standbys?.partitions() ?? []));
    await this.#untilBrokerAnswers('joinGroup', () => this.#consumer.joinGroup({}) as Promise<unknown>);
    this.#membershipLost = false;
  }

  /**
   * When a heartbeat says the member must rejoin, the client rejoins by itself; when that rejoin fails
   * (the broker is down, its retries run out) it emits 'error', stops heartbeating and never tries again.
   * It emits 'consumer:rejoin' either way: a consumer that is not active after it has given up, so the
   * loop rejoins (and meanwhile runs nothing: its assignment is gone).
   */
  #watchMembership(): void {
    this.#consumer.on('consumer:rejoin', () => {
      if (this.#consumer.isActive() || this.#stopRequested) return;
      this.#log.warn('the client gave up rejoining the group; rejoining until the broker answers');
      this.#membershipLost = true;
    });
  }

  /** Stops gracefully: commits what is processed, closes tasks, leaves the group, closes clients. */
  async close(): Promise<void> {
    this.#stopRequested = true;
    this.#stop.abort();
    await this.#loop?.catch(() => undefined);
    this.#loop = undefined;
    await this.#shutdown();
    if (this.#fatal) throw this.#fatal;
  }

  /** Resolves when the loop ends (fatal error or close); rejects with the fatal error. */
  async done(): Promise<void> {
    await this.#loop;
    if (this.#fatal) throw this.#fatal;
  }

  async #run(): Promise<void> {
    let inflight: { epoch: number; promise: Promise<FetchRound> } | undefined;
    try {
      while (!this.#stopRequested) {
        if (this.#membership.fatal) throw this.#membership.fatal;
        if (this.#membershipLost || this.#inactiveTooLong()) {
          inflight = undefined;
          await this.#rejoin();
          continue;
        }
        if (this.#latest && this.#latest !== this.#assigned) {
          inflight = undefined;
          await this.#rebalance(this.#latest);
          continue;
        }
        await this.#maybeCleanState();
        const positions = this.#fetchPositions();
        if (positions.length === 0) {
          await this.#maybeCommit(true);
          await sleep(50);
          continue;
        }
        inflight ??= { epoch: this.#fetchEpoch, promise: this.#fetcher.fetchRound(positions) };
        const current = inflight;
        inflight = undefined;
        let round: FetchRound;
        try {
          round = await current.promise;
        } catch (error) {
          if (isMigratedError(error)) throw new TaskMigratedError('fetch failed', { cause: error });
          await this.#pauseAfterBrokerFailure('fetch', error);
          continue;
        }
        this.#brokerAnswered();
        if (current.epoch !== this.#fetchEpoch) continue;
        if (round.outOfRange.length > 0) await this.#stopOutOfRange(round.outOfRange);
        const fetched = round.fetched;
        this.#advanceFetchPositions(fetched);
        // Pipelining: the broker prepares the next batch while this one is processed.
        if (!this.#stopRequested && this.#latest === this.#assigned)
          inflight = { epoch: this.#fetchEpoch, promise: this.#fetcher.fetchRound(this.#fetchPositions()) };
        inflight?.promise.catch(() => undefined);
        await this.#processFetched(fetched);
        await this.#maybeCommit(false);
      }
      await this.#maybeCommit(true);
    } catch (error) {
      await this.#onLoopError(error);
      if (!this.#fatal && !this.#stopRequested) return this.#run();
    }
  }

  /**
   * A fallback for #watchMembership: a consumer with no heartbeat scheduled for longer than a JoinGroup can
   * block (the rebalance timeout) plus a session is not rejoining by itself any more.
   */
  #inactiveTooLong(): boolean {
    if (this.#consumer.isActive()) {
      this.#inactiveSinceMs = undefined;
      return false;
    }
    const now = Date.now();
    this.#inactiveSinceMs ??= now;
    const boundMs = Math.max(30_000, this.#options.sessionTimeoutMs) + this.#options.sessionTimeoutMs;
    if (now - this.#inactiveSinceMs < boundMs) return false;
    this.#log.warn(
      { inactiveForMs: now - this.#inactiveSinceMs },
      'the consumer has not been a group member for too long; rejoining',
    );
    this.#inactiveSinceMs = undefined;
    return true;
  }

  /** The group membership is gone: drop the tasks (their generation cannot commit) and join again. */
  async #rejoin(): Promise<void> {
    this.#state = 'REBALANCING';
    this.#emitStatus();
    await this.#abortAndCloseTasks();
    this.#assigned = undefined;
    this.#latest = undefined;
    this.#membership.rejoining();
    await this.#joinGroup();
  }

  /** A broker call failed with what looks like an outage: report it and wait (bounded backoff, interrupted by close()). */
  async #pauseAfterBrokerFailure(step: string, error: unknown): Promise<void> {
    const retryInMs = backoffDelayMs(BROKER_BACKOFF, this.#brokerFailures++);
    if (isBrokerUnavailable(error)) this.#outage.failed(step, error, retryInMs);
    else this.#log.warn({ err: error, step, retryInMs }, `${step} failed; retrying`);
    await sleepUnlessStopped(retryInMs, this.#stop.signal);
  }

  #brokerAnswered(): void {
    this.#brokerFailures = 0;
    this.#outage.recovered();
  }

  async #onLoopError(error: unknown): Promise<void> {
    if (error instanceof StoppedError && this.#stopRequested) return;
    // FENCED_INSTANCE_ID: another process has this group.instance.id; it is not a migration to rejoin from.
    this.#fatal ??= this.#membership.fencedError(error, this.#consumer);
    // The 'fail' processing exception handler: the user chose to stop on a record that throws.
    if (error instanceof ProcessingError)
      this.#fatal ??= new FatalStreamsError('processing_failed', error.message, { cause: error });
    if (error instanceof FatalStreamsError || this.#fatal) {
      this.#fatal ??= error as FatalStreamsError;
      this.#state = 'FAILED';
      this.#log.error({ err: error }, 'fatal streams error; stopping');
      await this.#abortAndCloseTasks();
      return;
    }
    // Rebalances are expected, broker outages are waited out; anything else failing again and again is a
    // bug or a broken environment.
    // A fencing answer to a send, commit or abort is not proof of a newer instance: a transaction that
    // outlived its timeout (a broker outage) is aborted by the coordinator with an epoch bump, and the
    // next EndTxn gets PRODUCER_FENCED too. The next transaction's InitProducerId, sent with this
    // producer's id and epoch (producer.ts, trap 1), tells them apart: a zombie is refused there and stops.
    const migrated =
      error instanceof TaskMigratedError ||
      isMigratedError(error) ||
      isFencedError(error) ||
      isProducerFencedError(error);
    const fatalAccess = migrated
      ? undefined
      : permanentKafkaError(error, this.#options.connection as KafkaSecurityOptions | undefined);
    const brokerDown = !fatalAccess && !migrated && isBrokerUnavailable(error);
    if (fatalAccess && !(fatalAccess instanceof StoppedError)) {
      this.#fatal =
        fatalAccess instanceof FatalStreamsError
          ? fatalAccess
          : new FatalStreamsError((fatalAccess as { code?: string }).code ?? 'kafka_fatal', fatalAccess.message, {
              cause: error,
            });
    } else if (!brokerDown && !migrated) this.#consecutiveFailures++;
    if (this.#consecutiveFailures > MAX_CONSECUTIVE_FAILURES) {
      this.#fatal = new FatalStreamsError(
        'commit_failing',
        `${this.#consecutiveFailures} attempts in a row failed; stopping rather than looping`,
        { cause: error },
      );
    }
    if (!brokerDown)
      this.#log.warn(
        { err: error, attempt: this.#consecutiveFailures },
        'task migrated or commit failed; aborting and re-opening tasks',
      );
    await this.#abortAndCloseTasks();
    if (this.#fatal) {
      this.#state = 'FAILED';
      this.#log.error({ err: this.#fatal }, 'fatal streams error; stopping');
      return;
    }
    this.#assigned = undefined;
    if (brokerDown) await this.#pauseAfterBrokerFailure('commit or rebalance', error);
    else await sleep(100);
  }

  /** Deletes state folders unused for longer than the delay; between iterations, so never while a rebalance opens stores. */
  async #maybeCleanState(): Promise<void> {
    const now = Date.now();
    // Not once a stop is requested: close() must not wait for a sweep (or its listOffsets during a broker outage).
    if (now - this.#stateCleanedAtMs < STATE_CLEANUP_INTERVAL_MS || this.#assigned === undefined || this.#stopRequested)
      return;
    this.#stateCleanedAtMs = now;
    try {
      const { deleted } = await this.#cleaner().sweep(
        new Set([...this.#assigned.partitions, ...(this.#standbys?.partitions() ?? [])]),
      );
      if (deleted.length > 0) this.#log.info({ deleted }, 'deleted unused state folders');
      this.#options.onStateCleanup?.(deleted);
    } catch (error) {
      this.#log.warn({ err: error }, 'state cleanup failed; retrying at the next interval');
    }
  }

  #cleaner(): StateDirectoryCleaner {
    const { stateDir, applicationId, instanceId } = this.#options;
    this.#stateCleaner ??= new StateDirectoryCleaner({
      appDir: path.join(stateDir, applicationId),
      instanceId,
      cleanupDelayMs: this.#options.stateCleanupDelayMs ?? STATE_CLEANUP_DELAY_MS_DEFAULT,
      recovery: {
        acceptableLagRecords: this.#options.acceptableRecoveryLag ?? ACCEPTABLE_RECOVERY_LAG_DEFAULT,
        changelogEndOffsets: (p) => this.#changelogEndOffsets(p),
      },
    });
    return this.#stateCleaner;
  }

  async #changelogEndOffsets(partition: number): Promise<Map<string, bigint>> {
    const stores = this.#topology
      .stores()
      .filter((store) => store.logged)
      .map((store) => store.name);
    const topic = (store: string) => `${this.#options.applicationId}-${store}-changelog`;
    const ends = await this.#listOffsets(
      Object.fromEntries(stores.map((store) => [topic(store), [partition]])),
      ListOffsetTimestamps.LATEST,
    );
    return new Map(stores.map((store) => [store, ends.get(tpKey(topic(store), partition)) ?? 0n]));
  }

  // ---- assignment -------------------------------------------------------------------------

  /** This member's subscription user data: what it runs, keeps warm and has on disk. */
  #memberInfo(): Buffer {
    const { stateDir, applicationId, instanceId } = this.#options;
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
      standby: this.#standbys?.partitions() ?? [],
      local: this.#cleaner().warmLocal(local),
    });
  }

  async #rebalance(assignment: Assignment): Promise<void> {
    this.#state = 'REBALANCING';
    this.#stopped.clear();
    this.#emitStatus();
    // Work processed under the previous generation cannot be committed any more: drop it.
    await this.#abortAndCloseTasks();
    // Active tasks closed first: a standby may take over the folder of a partition that moved away, and
    // a standby of a partition that became active here gives its folder (and checkpoint) to the task.
    await this.#standbys!.assign(assignment.standby.filter((p) => !assignment.partitions.includes(p)));
    this.#assigned = assignment;
    const tasks: StreamTask[] = [];
    for (const partition of assignment.partitions) {
      const task = this.#createTask(partition);
      await task.openStores();
      this.#tasks.set(partition, task);
      tasks.push(task);
    }
    const committed = await this.#committedOffsets(assignment.partitions);
    this.#emitStatus();
    const restored = await restoreTasks(
      tasks,
      (store) => `${this.#options.applicationId}-${store}-changelog`,
      this.#consumer,
      this.#fetcher,
      this.#log,
      undefined,
      this.#options.transactionTimeoutMs * 2,
      this.#internal.changelogCheck(),
    );
    this.#restoredRecords += restored.records;
    const earliest = await this.#earliestOffsets(tasks, committed);
    for (const task of tasks) {
      const positions = await this.#startPositions(task, committed, earliest);
      if (positions) task.initialize(positions);
    }
    this.#fetchEpoch++;
    this.#lastCommitMs = Date.now();
    this.#state = 'RUNNING';
    this.#brokerAnswered();
    this.#log.info(
      {
        generation: assignment.generationId,
        partitions: this.runningPartitions(),
        stopped: [...this.#stopped.keys()].map((k) => k.replace('\u0000', '-')),
        standby: assignment.standby,
        restoredRecords: restored.records,
      },
      'tasks running',
    );
    this.#emitStatus();
  }

  async #committedOffsets(partitions: number[]): Promise<Map<string, bigint>> {
    if (partitions.length === 0) return new Map();
    const topics = new Map(this.#topology.sourceTopics().map((t) => [t, partitions]));
    return fetchStableOffsets(this.#consumer, topics, {
      clientId: `${this.#options.applicationId}-${this.#options.instanceId}-offsets`,
      connection: this.#options.connection ?? {},
      timeoutMs: this.#options.transactionTimeoutMs * 3,
      retryDelayMs: 50,
    });
  }

  // ---- offsets fail closed (see offset-reset.ts) ---------------------------------------------

  /** Partitions (tpKey of each stopped source topic-partition) that do not run, and why. */
  readonly #stopped = new Map<string, PartitionStop>();

  #isStopped(partition: number): boolean {
    if (this.#stopped.size === 0) return false;
    return this.#topology.sourceTopics().some((topic) => this.#stopped.has(tpKey(topic, partition)));
  }

  #stopPartition(stop: PartitionStop): void {
    this.#stopped.set(tpKey(stop.topic, stop.partition), stop);
    this.#log.error(
      { topic: stop.topic, partition: stop.partition, code: stop.code, action: stop.action },
      `partition stopped: ${stop.reason}`,
    );
  }

  /** Log start offsets of the source partitions that have no committed offset (where "earliest" is). */
  async #earliestOffsets(tasks: StreamTask[], committed: Map<string, bigint>): Promise<Map<string, bigint>> {
    const partitions: Record<string, number[]> = {};
    for (const task of tasks) {
      for (const topic of this.#topology.sourceTopics())
        if ((committed.get(tpKey(topic, task.partition)) ?? -1n) < 0n) (partitions[topic] ??= []).push(task.partition);
    }
    return this.#listOffsets(partitions, ListOffsetTimestamps.EARLIEST);
  }

  async #listOffsets(partitions: Record<string, number[]>, timestamp: bigint): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    if (Object.keys(partitions).length === 0) return out;
    const listed = await this.#consumer.listOffsets({
      topics: Object.keys(partitions),
      partitions,
      timestamp,
      isolationLevel: 1,
    });
    for (const [topic, offsets] of listed)
      offsets.forEach((offset, partition) => out.set(tpKey(topic, partition), offset));
    return out;
  }

  /** The positions a restored task starts from, or undefined (and the task stopped) when it must not start. */
  async #startPositions(
    task: StreamTask,
    committed: Map<string, bigint>,
    earliest: Map<string, bigint>,
  ): Promise<Map<string, bigint> | undefined> {
    const topics = this.#topology.sourceTopics();
    const committedOf = offsetsOf(committed, topics, task.partition);
    const missing = topics.some((t) => (committedOf.get(t) ?? -1n) < 0n);
    const withData = missing ? await storesWithData(task) : [];
    const decision = decideStart({
      policy: this.#options.offsetReset,
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

  /** Out-of-range positions stop their partitions only; the loop goes on with the others. */
  async #stopOutOfRange(positions: FetchPosition[]): Promise<void> {
    const partitions: Record<string, number[]> = {};
    for (const p of positions) (partitions[p.topic] ??= []).push(p.partition);
    const [starts, ends] = await Promise.all([
      this.#listOffsets(partitions, ListOffsetTimestamps.EARLIEST).catch(() => new Map<string, bigint>()),
      this.#listOffsets(partitions, ListOffsetTimestamps.LATEST).catch(() => new Map<string, bigint>()),
    ]);
    for (const p of positions) {
      const key = tpKey(p.topic, p.partition);
      if (!this.#stopped.has(key))
        this.#stopPartition(
          outOfRangeStop('processor', p.topic, p.partition, p.offset, starts.get(key), ends.get(key)),
        );
    }
    this.#emitStatus();
  }

  #createTask(partition: number): StreamTask {
    const { applicationId, instanceId, stateDir } = this.#options;
    return new StreamTask({
      topology: this.#topology,
      applicationId,
      partition,
      partitions: this.#partitions,
      dir: path.join(stateDir, applicationId, instanceId, String(partition)),
      partitionsOf: (topic) => this.#partitionCountOf(topic),
      partitionForKey,
      emit: (output) => this.#outputs.push(this.#internal.sign(output, partition)),
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
      this.#options.onProcessingError?.(info);
    } catch (error) {
      this.#log.warn({ err: error }, 'processing error listener failed');
    }
  }

  async #abortAndCloseTasks(): Promise<void> {
    await this.#settleCommit();
    this.#outputs = [];
    this.#pendingRecords = 0;
    const transaction = this.#producer?.transaction;
    if (transaction && !transaction.completed) {
      await transaction.abort().catch(async (error: unknown) => {
        // Fencing here is checked by the next InitProducerId (see #onLoopError), not taken as fatal.
        if (!isBrokerUnavailable(error)) this.#log.warn({ err: error }, 'abort failed');
        // The client keeps a transaction whose EndTxn failed as the active one and refuses the next
        // beginTransaction. Dropped locally: the next transaction starts with an epoch bump (producer.ts,
        // trap 6), which makes the coordinator abort this one.
        if (!transaction.completed) await transaction.cancel().catch(() => undefined);
      });
    }
    for (const task of this.#tasks.values()) {
      await task
        .close()
        .catch((error: unknown) => this.#log.warn({ err: error, task: task.id }, 'closing task failed'));
    }
    this.#tasks.clear();
    this.#fetchEpoch++;
  }

  // ---- processing -------------------------------------------------------------------------

  readonly #nextFetch = new Map<string, bigint>();

  #fetchPositions(): FetchPosition[] {
    const out = [];
    for (const task of this.#tasks.values()) {
      if (task.state !== 'RUNNING' || this.#isStopped(task.partition)) continue;
      for (const [topic, offset] of task.positions) {
        const key = tpKey(topic, task.partition);
        const next = this.#nextFetch.get(key);
        out.push({
          topic,
          partition: task.partition,
          offset: next !== undefined && next > offset && this.#nextFetchEpoch === this.#fetchEpoch ? next : offset,
        });
      }
    }
    if (this.#nextFetchEpoch !== this.#fetchEpoch) {
      this.#nextFetch.clear();
      this.#nextFetchEpoch = this.#fetchEpoch;
    }
    return out;
  }

  #nextFetchEpoch = 0;

  /** Last stable offset per source partition, as the last fetch reported it (for lag). */
  readonly #stableEnds = new Map<string, bigint>();

  #advanceFetchPositions(fetched: FetchRound['fetched']): void {
    for (const part of fetched) {
      const key = tpKey(part.topic, part.partition);
      this.#nextFetch.set(key, part.nextOffset);
      if (part.lastStableOffset >= 0n) this.#stableEnds.set(key, part.lastStableOffset);
    }
  }

  /** Processes in chunks so that no transaction carries more than batchRecordsMax input records. */
  async #processFetched(fetched: FetchRound['fetched']): Promise<void> {
    for (const part of fetched) {
      let task = this.#tasks.get(part.partition);
      // A stopped task takes nothing more, not even the other source topic's records of this round.
      if (task?.state !== 'RUNNING' || this.#isStopped(part.partition)) continue;
      if (part.records.length === 0 && part.nextOffset <= (task.positions.get(part.topic) ?? 0n)) continue;
      let index = 0;
      do {
        const room = Math.max(1, this.#options.batchRecordsMax - this.#pendingRecords);
        const chunk = part.records.slice(index, index + room);
        index += chunk.length;
        const last = index >= part.records.length;
        // Records of a repartition topic are applied only if they verify; the others become dead letters
        // in the same transaction as the offsets that pass them.
        const { accepted, deadLetters } = this.#internal.authenticate(part.topic, chunk, (topic) =>
          this.#partitionCountOf(topic),
        );
        for (const letter of deadLetters) this.#outputs.push(letter);
        this.#pendingRecords += deadLetters.length;
        this.#pendingRecords += await task.process(
          part.topic,
          accepted,
          last ? part.nextOffset : chunk[chunk.length - 1]!.offset + 1n,
        );
        await this.#maybeCommit(false);
        task = this.#tasks.get(part.partition);
        if (task?.state !== 'RUNNING') break;
      } while (index < part.records.length);
    }
  }

  // ---- commit -----------------------------------------------------------------------------

  /**
   * Commits when due: commitIntervalMs passed, batchRecordsMax records pending, or forced. While a
   * transaction is in flight, processing goes on until the next one is full (or forced); then it
   * waits for the one in flight, which also surfaces its failure here, in the loop.
   */
  async #maybeCommit(force: boolean): Promise<void> {
    if (this.#inflight?.settled) await this.#awaitCommit();
    const now = Date.now();
    for (const task of this.#tasks.values()) await task.punctuate(now);
    const full = this.#pendingRecords >= this.#options.batchRecordsMax;
    const due = force || full || now - this.#lastCommitMs >= this.#options.commitIntervalMs;
    if (!due) return;
    if (this.#inflight && !force && !full) return;
    await this.#awaitCommit();
    this.#lastCommitMs = Date.now();
    this.#startCommit();
    if (force) await this.#awaitCommit();
  }

  /** Waits for the transaction in flight; rethrows its failure. */
  async #awaitCommit(): Promise<void> {
    const inflight = this.#inflight;
    if (!inflight) return;
    await inflight.promise;
    this.#inflight = undefined;
    if (inflight.error !== undefined) throw inflight.error;
  }

  /** Failure paths: the transaction in flight ends (committed and flushed, or failed) before tasks close. */
  async #settleCommit(): Promise<void> {
    const inflight = this.#inflight;
    if (!inflight) return;
    await inflight.promise;
    this.#inflight = undefined;
    if (inflight.error === undefined) return;
    this.#log.warn({ err: inflight.error }, 'the transaction in flight failed');
  }

  /**
   * Starts a commit, in three phases as in Kafka Streams:
   *   1. prepare (synchronous, so no processing interleaves): take the outputs, every task's positions,
   *      and each store's writes as its committing layer with their changelog records
   *   2. one Kafka transaction: send them, add the consumer offsets of every task (with the group
   *      generation and member id of the assignment they were processed under), commit
   *   3. post-commit: each store writes its committing layer and the changelog offset it reached in ONE batch
   * Phases 2 and 3 run in the background while the loop processes the next batch into the stores'
   * current layers and a fresh output buffer.
   */
  #startCommit(): void {
    const tasks = [...this.#tasks.values()].filter((t) => t.state === 'RUNNING' && t.commitNeeded());
    if (tasks.length === 0 && this.#outputs.length === 0) return;
    if (this.#latest !== this.#assigned)
      throw new TaskMigratedError('a rebalance happened since the tasks were assigned');
    const prepared = this.#prepareCommit(tasks);
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

  #prepareCommit(tasks: StreamTask[]): PreparedCommit {
    const startedMs = Date.now();
    const messages: MessageToProduce[] = this.#outputs.map(toMessage);
    const prepared: PreparedCommit = {
      startedMs,
      generationId: this.#assigned!.generationId,
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
        const topic = `${this.#options.applicationId}-${name}-changelog`;
        for (const e of entries) {
          const key = Buffer.from(e.key, 'utf8');
          const headers = this.#internal.changelogHeaders(name, task.partition, key, e.value);
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

  /** Phases 2 and 3 of a prepared commit. */
  async #commit(prepared: PreparedCommit): Promise<void> {
    if (this.#fatal) throw this.#fatal;
    // After a failed transaction this sends InitProducerId with our producer id and epoch: refused
    // (PRODUCER_FENCED) only when a newer instance with the same transactional id took over.
    const transaction = await this.#producer.beginTransaction().catch((error: unknown) => {
      throw isFencedError(error) || isProducerFencedError(error) ? fenced(error) : error;
    });
    this.#assertNotFenced();
    const offsets: Array<{ topic: string; partition: number; offset: bigint }> = [];
    // One send per chunk: the client puts a partition's messages of one send into one record batch,
    // which the broker refuses beyond message.max.bytes (1 MiB by default).
    for (const chunk of chunkByPartitionBytes(prepared.messages, SEND_PARTITION_BYTES_MAX)) {
      const result = await transaction.send({ messages: chunk });
      offsets.push(...(result.offsets ?? []));
    }
    await this.#addOffsets(prepared);
    await transaction.commit();
    const nextChangelog = changelogOffsets(offsets, prepared.changelogCounts);
    // One database per store: their batches go to LevelDB's threads together. Every flush ends before
    // the first error is rethrown, so none is still writing when the failure path closes the stores.
    const flushed = await Promise.allSettled(
      prepared.flushes.map(({ task, name, store }) =>
        store.flush(store.options.logged ? (nextChangelog.get(`${task.partition}/${name}`) ?? null) : null),
      ),
    );
    const failed = flushed.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    for (const { task, positions } of prepared.positions) task.markCommitted(positions);
    this.#consecutiveFailures = 0;
    this.#brokerAnswered();
    this.#options.onCommit?.({
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
    const current = this.#producer.producerId;
    if (current === undefined || current !== this.#producerId) {
      throw fenced(new Error(`producer id changed from ${this.#producerId} to ${current}`));
    }
  }

  /**
   * One TxnOffsetCommit for every partition (the client's addOffset merges concurrent calls), fenced by
   * the generation the tasks were assigned under: a stale member's commit fails with ILLEGAL_GENERATION.
   */
  async #addOffsets(prepared: PreparedCommit): Promise<void> {
    const offsets: TransactionOffset[] = [];
    for (const { task, positions } of prepared.positions) {
      for (const [topic, offset] of positions) offsets.push({ topic, partition: task.partition, offset });
    }
    const consumer = this.#consumer;
    const group = {
      groupId: consumer.groupId,
      generationId: prepared.generationId,
      ...this.#membership.commitMember(consumer),
    };
    await sendOffsetsToTransaction(this.#producer, consumer, offsets, {
      group,
      timeoutMs: this.#options.transactionTimeoutMs,
    });
  }

  async #checkTopics(): Promise<void> {
    const sourceTopics = this.#topology.sourceTopics();
    const changelogs = this.#topology
      .stores()
      .filter((s) => s.logged)
      .map((s) => `${this.#options.applicationId}-${s.name}-changelog`);
    const all = [
      ...new Set([
        ...sourceTopics,
        ...changelogs,
        ...this.#topology.sinkTopics(),
        ...this.#internal.deadLetterTopics(),
      ]),
    ];
    // A wrong password, an untrusted certificate, a missing ACL or a missing topic fails here first, and
    // stops the start (#untilBrokerAnswers); a broker that does not answer is waited for.
    const metadata = await this.#consumer.metadata({ topics: all });
    for (const topic of all) {
      const info = metadata.topics.get(topic);
      if (!info)
        throw new FatalStreamsError(
          'topics_missing',
          `topic ${topic} does not exist; create it with \`bankstream topics create\``,
        );
      this.#partitionCounts.set(topic, info.partitionsCount);
    }
    const copartitioned = [...sourceTopics, ...changelogs];
    const counts = copartitioned.map((t) => `${t}=${this.#partitionCounts.get(t)}`);
    const distinct = new Set(copartitioned.map((t) => this.#partitionCounts.get(t)));
    if (distinct.size !== 1)
      throw new FatalStreamsError(
        'topics_not_copartitioned',
        `input, repartition and changelog topics must have the same partition count: ${counts.join(', ')}`,
      );
    this.#partitions = [...distinct][0]!;
  }

  #partitionCountOf(topic: string): number {
    const count = this.#partitionCounts.get(topic);
    if (count === undefined)
      throw new FatalStreamsError('topic_unknown', `sink topic ${topic} was not checked at start-up`);
    return count;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'STOPPING';
    await this.#abortAndCloseTasks();
    await this.#standbys
      ?.close()
      .catch((error: unknown) => this.#log.warn({ err: error }, 'closing standby tasks failed'));
    await this.#standbyConsumer?.close(true).catch(() => undefined);
    if (this.#consumer) await this.#membership.leaveOrStay(this.#consumer).catch(() => undefined);
    this.#membership.detach();
    await this.#consumer?.close(true).catch(() => undefined);
    await this.#producer?.close(true).catch(() => undefined);
    this.#state = this.#fatal ? 'FAILED' : 'STOPPED';
    this.#emitStatus();
  }
}

/** Bytes of one partition's records per send, well below the broker's default message.max.bytes. */
const SEND_PARTITION_BYTES_MAX = 512 * 1024;

/** Splits messages, keeping their order, so that no chunk holds more than `limit` bytes for one partition. */
export function chunkByPartitionBytes(messages: MessageToProduce[], limit: number): MessageToProduce[][] {
  const chunks: MessageToProduce[][] = [];
  let current: MessageToProduce[] = [];
  // Bytes of the current chunk per topic, indexed by partition (no key string built per message).
  let bytes = new Map<string, number[]>();
  for (const m of messages) {
    const partition = m.partition ?? 0;
    let perPartition = bytes.get(m.topic);
    if (perPartition === undefined) bytes.set(m.topic, (perPartition = []));
    const size = approximateSize(m);
    const before = perPartition[partition] ?? 0;
    if (current.length > 0 && before + size > limit) {
      chunks.push(current);
      current = [];
      bytes = new Map([[m.topic, (perPartition = [])]]);
      perPartition[partition] = size;
    } else {
      perPartition[partition] = before + size;
    }
    current.push(m);
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function approximateSize(m: MessageToProduce): number {
  let size = 32 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
  if (m.headers instanceof Map) for (const [k, v] of m.headers) size += 8 + k.length + v.length;
  return size;
}

function toMessage(o: OutputRecord): MessageToProduce {
  const message: MessageToProduce = { topic: o.topic, partition: o.partition, timestamp: BigInt(o.timestamp) };
  if (o.key) message.key = o.key;
  if (o.value) message.value = o.value;
  const names = Object.keys(o.headers);
  // The client's default serializers take Buffer header keys too, so headers go as a Map of Buffers.
  if (names.length > 0) message.headers = new Map(names.map((name) => [headerNameBytes(name), o.headers[name]!]));
  return message;
}

/** Header names as bytes, made once each: every leg carries the same few (the MAC headers). Bounded. */
const HEADER_NAME_BYTES = new Map<string, Buffer>();
const HEADER_NAMES_CACHED_MAX = 1024;

function headerNameBytes(name: string): Buffer {
  let bytes = HEADER_NAME_BYTES.get(name);
  if (bytes === undefined) {
    bytes = Buffer.from(name, 'utf8');
    if (HEADER_NAME_BYTES.size < HEADER_NAMES_CACHED_MAX) HEADER_NAME_BYTES.set(name, bytes);
  }
  return bytes;
}

/** Next changelog offset per "partition/store": the lowest base offset + the count is never past the truth. */
function changelogOffsets(
  offsets: Array<{ topic: string; partition: number; offset: bigint }>,
  counts: Map<string, { task: StreamTask; store: string; count: number }>,
): Map<string, bigint> {
  const base = new Map<string, bigint>();
  for (const o of offsets) {
    const key = tpKey(o.topic, o.partition);
    const previous = base.get(key);
    if (previous === undefined || o.offset < previous) base.set(key, o.offset);
  }
  const out = new Map<string, bigint>();
  for (const [key, { task, store, count }] of counts) {
    const first = base.get(key);
    if (first !== undefined) out.set(`${task.partition}/${store}`, first + BigInt(count));
  }
  return out;
}

function fenced(cause: unknown): FatalStreamsError {
  return new FatalStreamsError(
    'producer_fenced',
    'this instance was fenced by a newer one with the same transactional id',
    { cause },
  );
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

/** Names of the task's stores that hold at least one entry (after restore: local data or changelog data). */
async function storesWithData(task: StreamTask): Promise<string[]> {
  const names: string[] = [];
  for (const [name, store] of task.stores) {
    try {
      for await (const _entry of store.range({ limit: 1 })) {
        names.push(name);
        break;
      }
    } catch {
      // A store that cannot even be read holds something: fail closed.
      names.push(name);
    }
  }
  return names;
}
