// The Postgres sink: reads transaction_completed, transaction_failed and audit_log (read_committed)
// in its own consumer group and writes them into the read model exactly once.
//
// Positions live in Postgres (sink_offsets), written in the same transaction as the rows, so the
// sink never trusts Kafka's committed offsets. The loop (#step), one step at a time:
//   1. when the client gave up rejoining the group (the broker was down): rejoin, holding nothing;
//   2. connect to Postgres; a new connection drops the pending batch and seeks again (a failover may
//      have lost the last commits, which are then read again from Kafka);
//   3. read the unresolved sink rejects when due (they make the instance not ready);
//   4. after start, a rebalance, a new connection or any failure: seek every assigned partition to its
//      stored offset (positions.ts; offsets fail closed);
//   5. fetch one round through src/kafka's Fetcher (explicit positions, the Java read_committed rule,
//      so aborted outcomes never reach the database); an out-of-range position stops its partition only;
//   6. add the records to the pending batch, bounded by sinkBatchRowsMax;
//   7. when the batch is full or sinkBatchMs old, write it in ONE transaction (see batch.ts).
// Any failure drops the pending batch, pauses with a bounded exponential backoff and seeks again:
// nothing was committed, so re-reading from the stored offsets loses and duplicates nothing.
import type { Consumer } from '@platformatic/kafka';
import type pg from 'pg';
import type { Config } from '../config/config.ts';
import type { Logger } from '../config/logger.ts';
import {
  BrokerHealth,
  type BrokerOutage,
  isBrokerUnavailable,
  permanentKafkaError,
  retryUntilStopped,
  sleepUnlessStopped,
} from '../kafka/retry.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import type { Fetcher, PartitionFetch } from '../kafka/fetcher.ts';
import { tpKey } from '../kafka/fetcher.ts';
import { createReader, type Reader } from '../kafka/reader.ts';
import { SinkBatch, connectForBatches, loadUnresolvedRejects, writeBatch } from './batch.ts';
import { SinkDatabaseError, databaseStep, kafkaStep } from './errors.ts';
import { SinkPositions } from './positions.ts';
import { type SinkTopics, parseRecord } from './records.ts';
import type { SinkStatus } from './status.ts';

export interface PostgresSinkOptions {
  config: Config;
  logger: Logger;
  /** Defaults to the completed, failed and audit topics of the config. */
  topics?: SinkTopics;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /** Where broker outages are reported (/readyz, metrics); one of its own by default. */
  brokerHealth?: BrokerHealth;
}

const IDLE_WAIT_MS = 100;
// How often the unresolved rejects are read again, so an operator's resolution clears the alarm.
const REJECTS_CHECK_INTERVAL_MS = 15_000;
const FETCH_MAX_BYTES = 8 * 1024 * 1024;
const FETCH_PARTITION_MAX_BYTES = 1024 * 1024;

export class PostgresSink {
  readonly #config: Config;
  readonly #log: Logger;
  readonly #topics: SinkTopics;
  readonly #options: Required<Omit<PostgresSinkOptions, 'config' | 'logger' | 'topics' | 'brokerHealth'>>;
  readonly #outage: BrokerOutage;
  /** The client gave up rejoining the group: the loop rejoins before it fetches or writes again. */
  #membershipLost = false;
  readonly #stop = new AbortController();
  #consumer: Consumer | null = null;
  #fetcher: Fetcher | null = null;
  #db: pg.Client | null = null;
  #loop: Promise<void> | null = null;
  readonly #positions: SinkPositions;
  #batch = new SinkBatch();
  // Bumped by every group join; the partitions are re-seeked when it differs from #seekedGeneration.
  #generation = 0;
  #seekedGeneration: number | null = null;
  #status: SinkStatus = {
    state: 'created',
    lastError: null,
    rowsWritten: 0,
    rejectsWritten: 0,
    batchesWritten: 0,
    assignedPartitions: 0,
    consecutiveFailures: 0,
    stoppedPartitions: [],
    unresolvedRejects: null,
  };
  #connections = 0;
  #rejectsCheckedAtMs: number | null = null;

  constructor(options: PostgresSinkOptions) {
    this.#config = options.config;
    this.#log = options.logger.child({ component: 'postgres-sink', group: options.config.sinkGroupId });
    this.#topics = options.topics ?? {
      completed: options.config.topics.completed,
      failed: options.config.topics.failed,
      audit: options.config.topics.audit,
    };
    this.#options = {
      backoffMinMs: options.backoffMinMs ?? 250,
      backoffMaxMs: options.backoffMaxMs ?? 10_000,
      sessionTimeoutMs: options.sessionTimeoutMs ?? 10_000,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1_000,
    };
    this.#outage = (options.brokerHealth ?? new BrokerHealth(this.#log)).outage('sink', this.#log);
    this.#positions = new SinkPositions({
      config: this.#config,
      log: this.#log,
      topics: this.#sinkTopicList(),
      consumer: () => this.#requireConsumer(),
    });
  }

  /** A copy of the current state, for health checks and tests. */
  status(): SinkStatus {
    return { ...this.#status, stoppedPartitions: [...this.#positions.stopped] };
  }

  /** Connections to Postgres opened so far (the first included); each one re-seeked from its stored offsets. */
  connections(): number {
    return this.#connections;
  }

  /** Records of each assigned partition not written to Postgres yet (last stable offset of the last fetch − position). */
  lag(): Array<{ topic: string; partition: number; records: number }> {
    const out = [];
    for (const [key, { topic, partition, offset }] of this.#positions.current) {
      const end = this.#stableEnds.get(key);
      if (end !== undefined) out.push({ topic, partition, records: Number(end > offset ? end - offset : 0n) });
    }
    return out;
  }

  readonly #stableEnds = new Map<string, bigint>();

  /** Joins the consumer group and starts the loop in the background. */
  async start(): Promise<void> {
    if (this.#status.state !== 'created') throw new Error(`cannot start the sink in state ${this.#status.state}`);
    this.#status.state = 'starting';
    const { consumer, fetcher } = this.#createReader();
    this.#consumer = consumer;
    this.#fetcher = fetcher;
    consumer.on('consumer:group:join', (payload) => {
      this.#generation += 1;
      this.#log.info(
        { generation: payload.generationId, assignments: payload.assignments },
        'sink partitions assigned',
      );
    });
    // The client rejoins by itself when a heartbeat asks for it, but when that rejoin fails (the broker
    // is down) it stops heartbeating and never tries again: then the loop rejoins (#step).
    consumer.on('consumer:rejoin', () => {
      if (consumer.isActive() || this.#stop.signal.aborted) return;
      this.#log.warn('the client gave up rejoining the sink group; rejoining until the broker answers');
      this.#membershipLost = true;
    });
    consumer.topics.trackAll(this.#topics.completed, this.#topics.failed, this.#topics.audit);
    await this.#joinGroup(consumer);
    this.#loop = this.#run();
  }

  /**
   * JoinGroup until the broker answers or stop() is called: the client gives up after `retries` attempts
   * (#retryJoinGroup in its consumer.js), a broker restart takes longer. Security failures stop the start.
   */
  async #joinGroup(consumer: Consumer): Promise<void> {
    await retryUntilStopped(() => consumer.joinGroup({}) as Promise<unknown>, {
      step: 'sink joinGroup',
      outage: this.#outage,
      signal: this.#stop.signal,
      permanent: (error) => permanentKafkaError(error, this.#config.kafkaSecurity),
    });
    this.#membershipLost = false;
  }

  /**
   * Stops the loop, writes the pending batch when Postgres is up (`flushPending`, default true),
   * leaves the group and closes both connections. `flushPending: false` behaves like a crash as far
   * as the data goes: the pending rows are dropped and re-read by the next owner.
   */
  async stop(options: { flushPending?: boolean } = {}): Promise<void> {
    if (this.#status.state === 'stopped' || this.#status.state === 'created') return;
    this.#stop.abort();
    await this.#loop;
    this.#status.state = 'stopping';
    if (options.flushPending !== false) await this.#flushOnStop();
    // leaveGroup's first overload returns void in the typings; called without a callback it returns a promise.
    const leaving = this.#consumer?.leaveGroup(false) as Promise<void> | undefined;
    await leaving?.catch((error: unknown) => this.#log.warn({ err: error }, 'leaving the sink group failed'));
    await this.#consumer?.close(true).catch(() => undefined);
    await this.#closeDb();
    this.#status.state = 'stopped';
    this.#log.info({ rowsWritten: this.#status.rowsWritten }, 'sink stopped');
  }

  async #run(): Promise<void> {
    let backoffMs = this.#options.backoffMinMs;
    while (!this.#stop.signal.aborted) {
      try {
        await this.#step();
        if (this.#status.state !== 'running') this.#log.info({ previous: this.#status.state }, 'sink running');
        this.#status.state = 'running';
        this.#status.consecutiveFailures = 0;
        backoffMs = this.#options.backoffMinMs;
      } catch (error) {
        if (this.#stop.signal.aborted) break;
        await this.#onFailure(error, backoffMs);
        await sleepUnlessStopped(backoffMs, this.#stop.signal);
        backoffMs = Math.min(backoffMs * 2, this.#options.backoffMaxMs);
      }
    }
  }

  async #step(): Promise<void> {
    if (this.#membershipLost) {
      // Nothing is ours until the group says so again: write nothing for the old assignment.
      this.#positions.clear();
      this.#batch = new SinkBatch();
      this.#seekedGeneration = null;
      await this.#joinGroup(this.#requireConsumer());
      return;
    }
    const db = await this.#connectDb();
    await this.#maybeCheckRejects(db);
    if (this.#seekedGeneration !== this.#generation) await this.#seek(db);
    if (this.#positions.current.size === 0) {
      await sleepUnlessStopped(IDLE_WAIT_MS, this.#stop.signal);
      return;
    }
    const generation = this.#generation;
    const fetcher = this.#fetcher;
    if (!fetcher) throw new Error('the sink has no fetcher: start() was not called');
    const round = await kafkaStep('fetch', () => fetcher.fetchRound([...this.#positions.current.values()]));
    this.#outage.recovered();
    // A rebalance during the fetch: these partitions may not be ours; the next step re-seeks.
    if (generation !== this.#generation || this.#stop.signal.aborted) return;
    if (round.outOfRange.length > 0) await this.#positions.stopOutOfRange(round.outOfRange);
    this.#collect(round.fetched);
    if (this.#batchDue()) await this.#write(db);
  }

  /** Seeks every assigned partition to its offset in Postgres (positions.ts); the pending batch starts anew. */
  async #seek(db: pg.Client): Promise<void> {
    const generation = this.#generation;
    const assigned = this.#assignedPartitions();
    await this.#positions.seek(db, assigned);
    this.#batch = new SinkBatch();
    this.#seekedGeneration = generation;
    this.#status.assignedPartitions = assigned.length;
  }

  /** Adds fetched records to the batch without letting it grow past sinkBatchRowsMax. */
  #collect(fetched: PartitionFetch[]): void {
    const nowMs = Date.now();
    for (const part of fetched) {
      const position = this.#positions.current.get(tpKey(part.topic, part.partition));
      if (part.lastStableOffset >= 0n) this.#stableEnds.set(tpKey(part.topic, part.partition), part.lastStableOffset);
      if (!position || part.nextOffset <= position.offset) continue;
      const room = this.#config.sinkBatchRowsMax - this.#batch.rows;
      const taken = part.records.slice(0, Math.max(room, 0));
      for (const record of taken) this.#batch.add(parseRecord(this.#topics, record));
      const firstLeft = part.records[taken.length];
      position.offset = firstLeft ? firstLeft.offset : part.nextOffset;
      if (taken.length > 0 || !firstLeft) this.#batch.advance(part.topic, part.partition, position.offset, nowMs);
    }
  }

  #batchDue(): boolean {
    const first = this.#batch.firstAdvanceAtMs;
    if (first === null) return false;
    return this.#batch.rows >= this.#config.sinkBatchRowsMax || Date.now() - first >= this.#config.sinkBatchMs;
  }

  async #write(db: pg.Client): Promise<void> {
    const batch = this.#batch;
    const result = await databaseStep('write batch', () => writeBatch(db, this.#config.sinkGroupId, batch));
    this.#batch = new SinkBatch();
    this.#status.rowsWritten += result.rowsInserted;
    this.#status.rejectsWritten += result.rejectsInserted;
    this.#status.batchesWritten += 1;
    if (result.rejectsInserted > 0) {
      this.#log.error(
        { rejects: batch.rejects.map((r) => ({ ...r.source, offset: r.source.offset.toString(), error: r.error })) },
        'records the sink could not store were kept in sink_rejects: the read model differs from the ledger',
      );
      this.#rejectsCheckedAtMs = null;
      await this.#maybeCheckRejects(db);
    }
    this.#log.debug({ ...batch.counts(), inserted: result.rowsInserted }, 'sink batch written');
  }

  /** Drops the pending batch, records the error and makes the next step re-seek from Postgres. */
  async #onFailure(error: unknown, backoffMs: number): Promise<void> {
    this.#batch = new SinkBatch();
    this.#seekedGeneration = null;
    this.#status.consecutiveFailures += 1;
    this.#status.lastError = error instanceof Error ? error.message : String(error);
    const databaseDown = error instanceof SinkDatabaseError;
    this.#status.state = databaseDown ? 'paused-db-down' : 'paused-kafka-error';
    if (databaseDown) await this.#closeDb();
    const hint = databaseDown && error.sqlState === '42P01' ? 'run "bankstream migrate"' : undefined;
    // A broker outage is logged at a low rate by its tracker (first failure, then every 30 s).
    if (!databaseDown && isBrokerUnavailable(error)) return this.#outage.failed('sink fetch', error, backoffMs);
    this.#log.warn(
      { err: error, state: this.#status.state, retryInMs: backoffMs, attempt: this.#status.consecutiveFailures, hint },
      'sink paused',
    );
  }

  /** Reads the unresolved rejects when never read, after a new reject, or every REJECTS_CHECK_INTERVAL_MS. */
  async #maybeCheckRejects(db: pg.Client): Promise<void> {
    const nowMs = Date.now();
    if (this.#rejectsCheckedAtMs !== null && nowMs - this.#rejectsCheckedAtMs < REJECTS_CHECK_INTERVAL_MS) return;
    this.#status.unresolvedRejects = await databaseStep('read unresolved rejects', () =>
      loadUnresolvedRejects(db, this.#sinkTopicList()),
    );
    this.#rejectsCheckedAtMs = nowMs;
  }

  async #flushOnStop(): Promise<void> {
    if (this.#batch.firstAdvanceAtMs === null || !this.#db || this.#seekedGeneration === null) return;
    const db = this.#db;
    await this.#write(db).catch((error: unknown) =>
      this.#log.warn({ err: error }, 'the pending batch was not written on stop; it will be re-read'),
    );
  }

  /**
   * The connection, or a new one on the first read-write server of DATABASE_URL's host list. A NEW
   * connection always drops the pending batch and re-seeks from the offsets stored in that database:
   * after a failover the new primary may hold OLDER offsets than the old one had (asynchronous
   * replication loses the last commits), and only re-reading them replays that lost tail from Kafka.
   */
  async #connectDb(): Promise<pg.Client> {
    if (this.#db) return this.#db;
    const client = await databaseStep('connect', () => connectForBatches(this.#config));
    // An idle connection that dies emits 'error'; the next step notices and reconnects.
    client.on('error', (error) => {
      this.#log.warn({ err: error }, 'sink database connection lost');
      if (this.#db === client) this.#db = null;
    });
    this.#db = client;
    this.#batch = new SinkBatch();
    this.#seekedGeneration = null;
    this.#connections += 1;
    return client;
  }

  async #closeDb(): Promise<void> {
    const db = this.#db;
    this.#db = null;
    await db?.end().catch(() => undefined);
  }

  #createReader(): Reader {
    const reader = createReader({
      clientId: `${this.#config.appId}-${this.#config.instanceId}-sink`,
      bootstrapBrokers: this.#config.kafkaBrokers,
      security: kafkaConnectionOptions(this.#config.kafkaSecurity, this.#config.kafkaBrokers),
      // Offsets live in Postgres; Kafka's committed offsets are never read nor written.
      groupId: this.#config.sinkGroupId,
      group: {
        sessionTimeoutMs: this.#options.sessionTimeoutMs,
        heartbeatIntervalMs: this.#options.heartbeatIntervalMs,
        rebalanceTimeoutMs: Math.max(30_000, this.#options.sessionTimeoutMs),
      },
      fetch: {
        maxWaitMs: Math.min(this.#config.sinkBatchMs, 500),
        minBytes: 1,
        maxBytes: FETCH_MAX_BYTES,
        partitionMaxBytes: FETCH_PARTITION_MAX_BYTES,
      },
    });
    reader.consumer.on('error', (error: Error) => this.#log.warn({ err: error }, 'sink consumer error'));
    return reader;
  }

  #requireConsumer(): Consumer {
    if (!this.#consumer) throw new Error('the sink has no consumer: start() was not called');
    return this.#consumer;
  }

  #sinkTopicList(): string[] {
    return [this.#topics.completed, this.#topics.failed, this.#topics.audit];
  }

  #assignedPartitions(): Array<{ topic: string; partition: number }> {
    const topics = new Set(this.#sinkTopicList());
    return (this.#consumer?.assignments ?? [])
      .filter((assignment) => topics.has(assignment.topic))
      .flatMap((assignment) => assignment.partitions.map((partition) => ({ topic: assignment.topic, partition })));
  }
}
