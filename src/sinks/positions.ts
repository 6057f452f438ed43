// Where each assigned partition of the sink reads next, and which ones it does not read. Positions live
// in Postgres (sink_offsets, written in the same transaction as the rows), so after a start, a rebalance,
// a new connection or any failure the sink seeks every assigned partition to its stored offset. Offsets
// fail closed (src/kafka/offset-reset.ts): a partition with no stored offset starts at its log start only
// when that cannot skip or repeat anything, and a position out of range stops its partition only.
import { type Consumer, ListOffsetTimestamps } from '@platformatic/kafka';
import type pg from 'pg';
import type { Config } from '../config/config.ts';
import type { Logger } from '../config/logger.ts';
import { type FetchPosition, tpKey } from '../kafka/fetcher.ts';
import { decideStart, outOfRangeStop, type PartitionStop } from '../kafka/offset-reset.ts';
import { loadOffsets } from './batch.ts';
import { databaseStep, kafkaStep } from './errors.ts';

export interface SinkPositionsOptions {
  config: Config;
  log: Logger;
  /** The sink's topics (completed, failed, audit). */
  topics: string[];
  /** The sink's group consumer (listOffsets), once started. */
  consumer: () => Consumer;
}

export class SinkPositions {
  /** The next offset to read per assigned, running partition (tpKey). */
  current = new Map<string, FetchPosition>();
  /** Assigned partitions the sink does not read, and why. */
  stopped: PartitionStop[] = [];
  readonly #config: Config;
  readonly #groupId: string;
  readonly #log: Logger;
  readonly #topics: string[];
  readonly #consumer: () => Consumer;

  constructor(options: SinkPositionsOptions) {
    this.#config = options.config;
    this.#groupId = options.config.sinkGroupId;
    this.#log = options.log;
    this.#topics = options.topics;
    this.#consumer = options.consumer;
  }

  /** Nothing is read until the next seek (the group membership was lost). */
  clear(): void {
    this.current = new Map();
  }

  /**
   * Positions every assigned partition at its offset in Postgres. A fresh database (no offsets of this
   * group at all) first gets a row for EVERY partition of the sink topics at its log start, so that
   * members starting together all find rows. Afterwards a partition without a row starts at its log start
   * only when it is empty (src/kafka/offset-reset.ts); one with records is stopped: they may be sunk already.
   */
  async seek(db: pg.Client, assigned: Array<{ topic: string; partition: number }>): Promise<void> {
    const load = () => databaseStep('load offsets', () => loadOffsets(db, this.#groupId, this.#topics));
    let stored = await load();
    if (stored.size === 0 && this.#config.offsetReset !== 'none') {
      await this.#initializeOffsets(db);
      stored = await load();
    }
    const missing = assigned.filter((p) => !stored.has(tpKey(p.topic, p.partition)));
    const [earliest, latest] = await this.#logRanges(missing);
    this.current = new Map();
    this.stopped = [];
    const started: FetchPosition[] = [];
    for (const { topic, partition } of assigned) {
      const key = tpKey(topic, partition);
      const position = this.#startPosition(topic, partition, stored, earliest, latest);
      if (position === undefined) continue;
      if (!stored.has(key)) started.push({ topic, partition, offset: position });
      this.current.set(key, { topic, partition, offset: position });
    }
    if (started.length > 0)
      await databaseStep('store start offsets', () => storeStartOffsets(db, this.#groupId, started));
    this.#log.debug(
      { positions: [...this.current.values()].map((p) => `${p.topic}-${p.partition}@${p.offset}`) },
      'sink seeked to stored offsets',
    );
  }

  /** A fresh database: every partition of the sink topics starts at its log start. */
  async #initializeOffsets(db: pg.Client): Promise<void> {
    const topics = this.#topics;
    const consumer = this.#consumer();
    const earliest = await kafkaStep('list earliest offsets', () =>
      consumer.listOffsets({ topics, timestamp: ListOffsetTimestamps.EARLIEST }),
    );
    const positions = [...earliest].flatMap(([topic, offsets]) =>
      offsets.map((offset, partition) => ({ topic, partition, offset })),
    );
    await databaseStep('store start offsets', () => storeStartOffsets(db, this.#groupId, positions));
    this.#log.info(
      { group: this.#groupId, partitions: positions.length },
      'no sink offsets in this database: every partition starts at its log start',
    );
  }

  /** Log start and end offsets of the partitions that have no stored offset. */
  async #logRanges(
    partitions: Array<{ topic: string; partition: number }>,
  ): Promise<[Map<string, bigint[]>, Map<string, bigint[]>]> {
    if (partitions.length === 0) return [new Map(), new Map()];
    const topics = [...new Set(partitions.map((p) => p.topic))];
    const consumer = this.#consumer();
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
      stateDescription: `this database holds offsets of sink group ${this.#groupId} for other partitions and ${topic}-${partition} holds offsets ${start} to ${end}`,
    });
    if (decision.ok) return decision.positions.get(topic);
    for (const stop of decision.stops) this.#stopPartition(stop);
    return undefined;
  }

  #stopPartition(stop: PartitionStop): void {
    this.current.delete(tpKey(stop.topic, stop.partition));
    this.stopped = [...this.stopped.filter((s) => s.topic !== stop.topic || s.partition !== stop.partition), stop];
    this.#log.error(
      { topic: stop.topic, partition: stop.partition, code: stop.code, action: stop.action },
      `sink partition stopped: ${stop.reason}`,
    );
  }

  /** Out-of-range positions stop their partitions only (records deleted unsunk, or a recreated topic). */
  async stopOutOfRange(positions: FetchPosition[]): Promise<void> {
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
