// The Postgres sink: reads transaction_completed, transaction_failed and audit_log (read_committed)
// in its own consumer group and writes them into the read model exactly once.
//
// Positions live in Postgres (sink_offsets), written in the same transaction as the rows, so the
// sink never trusts Kafka's committed offsets. The loop, one step at a time:
//   1. connect to Postgres (pausing with bounded exponential backoff while it is unreachable);
//   2. after start, a rebalance or any failure: seek every assigned partition to its stored offset;
//   3. fetch one round through the runtime's Fetcher (explicit positions, the Java read_committed
//      rule, so aborted outcomes never reach the database);
//   4. add the records to the pending batch, bounded by sinkBatchRowsMax;
//   5. when the batch is full or sinkBatchMs old, write it in ONE transaction (see batch.ts).
// Any failure drops the pending batch and goes back to step 1: nothing was committed, so re-reading
// from the stored offsets loses and duplicates nothing.
import { Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import pg from 'pg';
import { type Config } from '../config/config.ts';
import { type Logger } from '../config/logger.ts';
import { BrokerHealth, type BrokerOutage, isBrokerUnavailable, permanentKafkaError, retryUntilStopped } from '../kafka/retry.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import { type FetchPosition, Fetcher, type PartitionFetch, tpKey } from '../runtime/fetcher.ts';
import { SinkBatch, STAGING_DDL, loadOffsets, writeBatch } from './batch.ts';
import { SinkDatabaseError, databaseStep, kafkaStep } from './errors.ts';
import { pgConnectionConfig } from './pg-connection.ts';
import { type SinkTopics, parseRecord } from './records.ts';

export type SinkState = 'created' | 'starting' | 'running' | 'paused-db-down' | 'paused-kafka-error' | 'stopping' | 'stopped';

export interface SinkStatus {
  state: SinkState;
  lastError: string | null;
  /** Rows inserted by this sink object (transactions, conflicts, audit rows); replays count nothing. */
  rowsWritten: number;
  rejectsWritten: number;
  batchesWritten: number;
  assignedPartitions: number;
  consecutiveFailures: number;
}

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
  #positions = new Map<string, FetchPosition>();
  #batch = new SinkBatch();
  // Bumped by every group join; the partitions are re-seeked when it differs from #seekedGeneration.
  #generation = 0;
  #seekedGeneration: number | null = null;
  #status: SinkStatus = {
    state: 'created', lastError: null, rowsWritten: 0, rejectsWritten: 0, batchesWritten: 0, assignedPartitions: 0, consecutiveFailures: 0,
  };

  constructor(options: PostgresSinkOptions) {
    this.#config = options.config;
    this.#log = options.logger.child({ component: 'postgres-sink', group: options.config.sinkGroupId });
    this.#topics = options.topics ?? { completed: options.config.topics.completed, failed: options.config.topics.failed, audit: options.config.topics.audit };
    this.#options = {
      backoffMinMs: options.backoffMinMs ?? 250,
      backoffMaxMs: options.backoffMaxMs ?? 10_000,
      sessionTimeoutMs: options.sessionTimeoutMs ?? 10_000,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1_000,
    };
    this.#outage = (options.brokerHealth ?? new BrokerHealth(this.#log)).outage('sink', this.#log);
  }

  /** A copy of the current state, for health checks and tests. */
  status(): SinkStatus {
    return { ...this.#status };
  }

  /** Records of each assigned partition not written to Postgres yet (last stable offset of the last fetch − position). */
  lag(): Array<{ topic: string; partition: number; records: number }> {
    const out = [];
    for (const [key, { topic, partition, offset }] of this.#positions) {
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
    const consumer = this.#createConsumer();
    this.#consumer = consumer;
    this.#fetcher = new Fetcher(consumer, {
      maxWaitMs: Math.min(this.#config.sinkBatchMs, 500),
      minBytes: 1,
      maxBytes: FETCH_MAX_BYTES,
      partitionMaxBytes: FETCH_PARTITION_MAX_BYTES,
    });
    consumer.on('consumer:group:join', (payload) => {
      this.#generation += 1;
      this.#log.info({ generation: payload.generationId, assignments: payload.assignments }, 'sink partitions assigned');
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
        await sleep(backoffMs, this.#stop.signal);
        backoffMs = Math.min(backoffMs * 2, this.#options.backoffMaxMs);
      }
    }
  }

  async #step(): Promise<void> {
    if (this.#membershipLost) {
      // Nothing is ours until the group says so again: write nothing for the old assignment.
      this.#positions = new Map();
      this.#batch = new SinkBatch();
      this.#seekedGeneration = null;
      await this.#joinGroup(this.#requireConsumer());
      return;
    }
    const db = await this.#connectDb();
    if (this.#seekedGeneration !== this.#generation) await this.#seek(db);
    if (this.#positions.size === 0) {
      await sleep(IDLE_WAIT_MS, this.#stop.signal);
      return;
    }
    const generation = this.#generation;
    const fetcher = this.#fetcher;
    if (!fetcher) throw new Error('the sink has no fetcher: start() was not called');
    const fetched = await kafkaStep('fetch', () => fetcher.fetch([...this.#positions.values()]));
    this.#outage.recovered();
    // A rebalance during the fetch: these partitions may not be ours; the next step re-seeks.
    if (generation !== this.#generation || this.#stop.signal.aborted) return;
    this.#collect(fetched);
    if (this.#batchDue()) await this.#write(db);
  }

  /** Positions every assigned partition at its offset in Postgres, or the earliest offset when none is stored. */
  async #seek(db: pg.Client): Promise<void> {
    const generation = this.#generation;
    const assigned = this.#assignedPartitions();
    const stored = await databaseStep('load offsets', () => loadOffsets(db, this.#config.sinkGroupId, this.#sinkTopicList()));
    const missingTopics = [...new Set(assigned.filter((p) => !stored.has(tpKey(p.topic, p.partition))).map((p) => p.topic))];
    const earliest = missingTopics.length === 0 ? new Map<string, bigint[]>()
      : await kafkaStep('list earliest offsets', () => this.#requireConsumer().listOffsets({ topics: missingTopics, timestamp: ListOffsetTimestamps.EARLIEST }));
    this.#positions = new Map();
    for (const { topic, partition } of assigned) {
      const key = tpKey(topic, partition);
      const offset = stored.get(key) ?? earliest.get(topic)?.[partition] ?? 0n;
      this.#positions.set(key, { topic, partition, offset });
      this.#fetcher?.reset(topic, partition);
    }
    this.#batch = new SinkBatch();
    this.#seekedGeneration = generation;
    this.#status.assignedPartitions = assigned.length;
    this.#log.debug({ positions: [...this.#positions.values()].map((p) => `${p.topic}-${p.partition}@${p.offset}`) }, 'sink seeked to stored offsets');
  }

  /** Adds fetched records to the batch without letting it grow past sinkBatchRowsMax. */
  #collect(fetched: PartitionFetch[]): void {
    const nowMs = Date.now();
    for (const part of fetched) {
      const position = this.#positions.get(tpKey(part.topic, part.partition));
      if (part.lastStableOffset >= 0n) this.#stableEnds.set(tpKey(part.topic, part.partition), part.lastStableOffset);
      if (!position || part.nextOffset <= position.offset) continue;
      const room = this.#config.sinkBatchRowsMax - this.#batch.rows;
      const taken = part.records.slice(0, Math.max(room, 0));
      for (const record of taken) this.#batch.add(parseRecord(this.#topics, record));
      const firstLeft = part.records[taken.length];
      // Stopping inside a fetched range: the read_committed state must be rebuilt from there.
      if (firstLeft) this.#fetcher?.reset(part.topic, part.partition);
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
    if (result.rejectsInserted > 0) this.#log.error({ rejects: result.rejectsInserted }, 'records the sink could not store were kept in sink_rejects');
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
    this.#log.warn({ err: error, state: this.#status.state, retryInMs: backoffMs, attempt: this.#status.consecutiveFailures, hint }, 'sink paused');
  }

  async #flushOnStop(): Promise<void> {
    if (this.#batch.firstAdvanceAtMs === null || !this.#db || this.#seekedGeneration === null) return;
    const db = this.#db;
    await this.#write(db).catch((error: unknown) => this.#log.warn({ err: error }, 'the pending batch was not written on stop; it will be re-read'));
  }

  async #connectDb(): Promise<pg.Client> {
    if (this.#db) return this.#db;
    const client = new pg.Client({
      ...pgConnectionConfig(this.#config.databaseUrl, this.#config.postgresTls),
      application_name: `${this.#config.appId}-sink`,
      connectionTimeoutMillis: 5_000,
      statement_timeout: 60_000,
      keepAlive: true,
    });
    // An idle connection that dies emits 'error'; the next step notices and reconnects.
    client.on('error', (error) => {
      this.#log.warn({ err: error }, 'sink database connection lost');
      if (this.#db === client) this.#db = null;
    });
    await databaseStep('connect', async () => {
      try {
        await client.connect();
        await client.query(STAGING_DDL);
      } catch (error) {
        await client.end().catch(() => undefined);
        throw error;
      }
    });
    this.#db = client;
    return client;
  }

  async #closeDb(): Promise<void> {
    const db = this.#db;
    this.#db = null;
    await db?.end().catch(() => undefined);
  }

  #createConsumer(): Consumer {
    const consumer = new Consumer({
      clientId: `${this.#config.appId}-${this.#config.instanceId}-sink`,
      bootstrapBrokers: this.#config.kafkaBrokers,
      ...kafkaConnectionOptions(this.#config.kafkaSecurity, this.#config.kafkaBrokers),
      groupId: this.#config.sinkGroupId,
      // Offsets live in Postgres; Kafka's committed offsets are never read nor written.
      autocommit: false,
      isolationLevel: 1,
      sessionTimeout: this.#options.sessionTimeoutMs,
      heartbeatInterval: this.#options.heartbeatIntervalMs,
      rebalanceTimeout: Math.max(30_000, this.#options.sessionTimeoutMs),
      timeout: 30_000,
      retries: 3,
      retryDelay: 250,
    });
    consumer.on('error', (error: Error) => this.#log.warn({ err: error }, 'sink consumer error'));
    return consumer;
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

/** Waits, or returns early when the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
