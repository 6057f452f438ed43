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
import { type Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type pg from 'pg';
import type { Config } from '../config/config.ts';
import type { Logger } from '../config/logger.ts';
import {
  BrokerHealth,
  type BrokerOutage,
  isBrokerUnavailable,
  permanentKafkaError,
  retryUntilStopped,
} from '../kafka/retry.ts';
import { kafkaConnectionOptions } from '../kafka/security.ts';
import type { FetchPosition, Fetcher, PartitionFetch } from '../kafka/fetcher.ts';
import { tpKey } from '../kafka/fetcher.ts';
import { createReader, type Reader } from '../kafka/reader.ts';
import { decideStart, outOfRangeStop, type PartitionStop } from '../runtime/offset-reset.ts';
import {
  SinkBatch,
  STAGING_DDL,
  loadOffsets,
  loadUnresolvedRejects,
  writeBatch,
  type UnresolvedRejects,
} from './batch.ts';
import { SinkDatabaseError, databaseStep, kafkaStep } from './errors.ts';
import { connectPg } from './pg-connection.ts';
import { type SinkTopics, parseRecord } from './records.ts';

export type SinkState =
  | 'created'
  | 'starting'
  | 'running'
  | 'paused-db-down'
  | 'paused-kafka-error'
  | 'stopping'
  | 'stopped';

export interface SinkStatus {
  state: SinkState;
  lastError: string | null;
  /** Rows inserted by this sink object (transactions, conflicts, audit rows); replays count nothing. */
  rowsWritten: number;
  rejectsWritten: number;
  batchesWritten: number;
  assignedPartitions: number;
  consecutiveFailures: number;
  /** Assigned partitions the sink does not read, and why (offsets missing in a used database, out of range). */
  stoppedPartitions: PartitionStop[];
  /**
   * Records of the sink's topics kept in sink_rejects and not resolved by an operator, as last read
   * from Postgres (by any sink instance of the database; null until first read). Each one may be
   * money the ledger moved and Postgres does not show: an alarm, and the instance is not ready.
   */
  unresolvedRejects: UnresolvedRejects | null;
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
  #positions = new Map<string, FetchPosition>();
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
  }

  /** A copy of the current state, for health checks and tests. */
  status(): SinkStatus {
    return { ...this.#status, stoppedPartitions: [...this.#status.stoppedPartitions] };
  }

  /** Connections to Postgres opened so far (the first included); each one re-seeked from its stored offsets. */
  connections(): number {
    return this.#connections;
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
    await this.#maybeCheckRejects(db);
    if (this.#seekedGeneration !== this.#generation) await this.#seek(db);
    if (this.#positions.size === 0) {
      await sleep(IDLE_WAIT_MS, this.#stop.signal);
      return;
    }
    const generation = this.#generation;
    const fetcher = this.#fetcher;
    if (!fetcher) throw new Error('the sink has no fetcher: start() was not called');
    const round = await kafkaStep('fetch', () => fetcher.fetchRound([...this.#positions.values()]));
    this.#outage.recovered();
    // A rebalance during the fetch: these partitions may not be ours; the next step re-seeks.
    if (generation !== this.#generation || this.#stop.signal.aborted) return;
    if (round.outOfRange.length > 0) await this.#stopOutOfRange(round.outOfRange);
    this.#collect(round.fetched);
    if (this.#batchDue()) await this.#write(db);
  }

  /**
   * Positions every assigned partition at its offset in Postgres. A fresh database (no offsets of this
   * group at all) first gets a row for EVERY partition of the sink topics at its log start, so that
   * members starting together all find rows. Afterwards a partition without a row starts at its log start
   * only when it is empty (offset-reset.ts); one with records is stopped: they may be sunk already.
   */
  async #seek(db: pg.Client): Promise<void> {
    const generation = this.#generation;
    const assigned = this.#assignedPartitions();
    const load = () =>
      databaseStep('load offsets', () => loadOffsets(db, this.#config.sinkGroupId, this.#sinkTopicList()));
    let stored = await load();
    if (stored.size === 0 && this.#config.offsetReset !== 'none') {
      await this.#initializeOffsets(db);
      stored = await load();
    }
    const missing = assigned.filter((p) => !stored.has(tpKey(p.topic, p.partition)));
    const [earliest, latest] = await this.#logRanges(missing);
    this.#positions = new Map();
    this.#status.stoppedPartitions = [];
    const started: FetchPosition[] = [];
    for (const { topic, partition } of assigned) {
      const key = tpKey(topic, partition);
      const position = this.#startPosition(topic, partition, stored, earliest, latest);
      if (position === undefined) continue;
      if (!stored.has(key)) started.push({ topic, partition, offset: position });
      this.#positions.set(key, { topic, partition, offset: position });
    }
    if (started.length > 0)
      await databaseStep('store start offsets', () => storeStartOffsets(db, this.#config.sinkGroupId, started));
    this.#batch = new SinkBatch();
    this.#seekedGeneration = generation;
    this.#status.assignedPartitions = assigned.length;
    this.#log.debug(
      { positions: [...this.#positions.values()].map((p) => `${p.topic}-${p.partition}@${p.offset}`) },
      'sink seeked to stored offsets',
    );
  }

  /** A fresh database: every partition of the sink topics starts at its log start. */
  async #initializeOffsets(db: pg.Client): Promise<void> {
    const topics = this.#sinkTopicList();
    const consumer = this.#requireConsumer();
    const earliest = await kafkaStep('list earliest offsets', () =>
      consumer.listOffsets({ topics, timestamp: ListOffsetTimestamps.EARLIEST }),
    );
    const positions = [...earliest].flatMap(([topic, offsets]) =>
      offsets.map((offset, partition) => ({ topic, partition, offset })),
    );
    await databaseStep('store start offsets', () => storeStartOffsets(db, this.#config.sinkGroupId, positions));
    this.#log.info(
      { group: this.#config.sinkGroupId, partitions: positions.length },
      'no sink offsets in this database: every partition starts at its log start',
    );
  }

  /** Log start and end offsets of the partitions that have no stored offset. */
  async #logRanges(
    partitions: Array<{ topic: string; partition: number }>,
  ): Promise<[Map<string, bigint[]>, Map<string, bigint[]>]> {
    if (partitions.length === 0) return [new Map(), new Map()];
    const topics = [...new Set(partitions.map((p) => p.topic))];
    const consumer = this.#requireConsumer();
    return Promise.all([
      kafkaStep('list earliest offsets', () =>
        consumer.listOffsets({ topics, timestamp: ListOffsetTimestamps.EARLIEST }),
      ),
      kafkaStep('list latest offsets', () =>
        consumer.listOffsets({ topics, timestamp: ListOffsetTimestamps.LATEST, isolationLevel: 1 }),
      ),
    ]);
  }

  #startPosition(
    topic: string,
    partition: number,
    stored: Map<string, bigint>,
    earliest: Map<string, bigint[]>,
    latest: Map<string, bigint[]>,
  ): bigint | undefined {
    const offset = stored.get(tpKey(topic, partition));
    if (offset !== undefined) return offset;
    const start = earliest.get(topic)?.[partition] ?? 0n;
    const end = latest.get(topic)?.[partition] ?? 0n;
    const decision = decideStart({
      policy: this.#config.offsetReset,
      group: 'sink',
      partition,
      committed: new Map(),
      earliest: new Map([[topic, start]]),
      topics: [topic],
      // The database holds this group's offsets (see #seek), and the partition has records: they may be sunk.
      hasState: end > start,
      stateDescription: `this database holds offsets of sink group ${this.#config.sinkGroupId} for other partitions and ${topic}-${partition} holds offsets ${start} to ${end}`,
    });
    if (decision.ok) return decision.positions.get(topic);
    for (const stop of decision.stops) this.#stopPartition(stop);
    return undefined;
  }

  #stopPartition(stop: PartitionStop): void {
    this.#positions.delete(tpKey(stop.topic, stop.partition));
    this.#status.stoppedPartitions = [
      ...this.#status.stoppedPartitions.filter((s) => s.topic !== stop.topic || s.partition !== stop.partition),
      stop,
    ];
    this.#log.error(
      { topic: stop.topic, partition: stop.partition, code: stop.code, action: stop.action },
      `sink partition stopped: ${stop.reason}`,
    );
  }

  /** Out-of-range positions stop their partitions only (records deleted unsunk, or a recreated topic). */
  async #stopOutOfRange(positions: FetchPosition[]): Promise<void> {
    const [earliest, latest] = await this.#logRanges(positions).catch(
      () => [new Map<string, bigint[]>(), new Map<string, bigint[]>()] as const,
    );
    for (const { topic, partition, offset } of positions) {
      this.#stopPartition(
        outOfRangeStop(
          'sink',
          topic,
          partition,
          offset,
          earliest.get(topic)?.[partition],
          latest.get(topic)?.[partition],
        ),
      );
    }
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
    const client = await databaseStep('connect', async () => {
      const db = await connectPg(this.#config.databaseUrl, this.#config.postgresTls, {
        // Never a read-only server: a standby would refuse every write anyway, and a primary in
        // read-only mode must not be mistaken for a place to write the read model.
        target: 'read-write',
        client: {
          application_name: `${this.#config.appId}-sink`,
          connectionTimeoutMillis: 5_000,
          statement_timeout: 60_000,
          keepAlive: true,
        },
      });
      try {
        await db.query(STAGING_DDL);
      } catch (error) {
        await db.end().catch(() => undefined);
        throw error;
      }
      return db;
    });
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

/** Stores where partitions without an offset start; a row written meanwhile by a batch wins. */
async function storeStartOffsets(db: pg.ClientBase, groupId: string, positions: FetchPosition[]): Promise<void> {
  await db.query(
    `INSERT INTO sink_offsets (group_id, topic, partition, next_offset, updated_at)
     SELECT $1, topic, partition, next_offset, now() FROM unnest($2::text[], $3::integer[], $4::bigint[]) AS o(topic, partition, next_offset)
     ON CONFLICT (group_id, topic, partition) DO NOTHING`,
    [
      groupId,
      positions.map((p) => p.topic),
      positions.map((p) => p.partition),
      positions.map((p) => p.offset.toString()),
    ],
  );
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

/**
 * Why a sink with this status makes its instance not ready (empty: nothing to say): a partition it does
 * not read (it needs an operator), or an unresolved reject (the read model differs from the ledger).
 */
export function sinkNotReadyReasons(status: SinkStatus): string[] {
  const reasons = status.stoppedPartitions.map(
    (stop) => `sink: ${stop.topic}-${stop.partition} stopped (${stop.code}): ${stop.reason}; ${stop.action}`,
  );
  const rejects = status.unresolvedRejects;
  if (rejects === null || rejects.count === 0) return reasons;
  const first = rejects.first;
  const where = first
    ? `; first ${first.topic}-${first.partition}@${first.offset}${first.key !== null ? ` (key ${JSON.stringify(first.key)})` : ''}: ${first.error}`
    : '';
  reasons.push(
    `sink_rejects: ${rejects.count} record(s) of the outcome and audit topics could not be stored in PostgreSQL, so the read model differs from the ledger${where}; see "bankstream reconcile" and resolve them in sink_rejects`,
  );
  return reasons;
}
