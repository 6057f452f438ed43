// Fetches committed records at explicit (topic, partition, offset) positions. The caller owns the
// positions, so a rebalance, an abort or a restore moves them with no hidden client-side buffer.
// Fetch goes through the client's protocol API, not Consumer.fetch, whose aborted-transaction filter can
// drop committed batches; the Java read_committed rule is applied instead (read-committed.ts). Why, and
// why full fetches with no fetch session: docs/notes/fetcher.md.
import { type Consumer, fetchV17 } from '@platformatic/kafka';
import type { Headers, InputRecord } from './records.ts';
import { findInErrorTree, kafkaErrorIds } from './errors.ts';
import { batchLastOffset, filterAbortedBatches, isControlBatch } from './read-committed.ts';

export const READ_COMMITTED = 1;

/** A committed record as fetched: exactly what a task graph takes as input. */
export type FetchedRecord = InputRecord;

/** Where to read a topic-partition next: the next offset. */
export interface FetchPosition {
  topic: string;
  partition: number;
  offset: bigint;
}

export interface PartitionFetch {
  topic: string;
  partition: number;
  records: FetchedRecord[];
  /** The offset to fetch next (past control markers and aborted batches too). */
  nextOffset: bigint;
  highWatermark: bigint;
  lastStableOffset: bigint;
}

/** A fetch round: the partitions' data, and the positions the broker answered OFFSET_OUT_OF_RANGE for. */
export interface FetchRound {
  fetched: PartitionFetch[];
  outOfRange: FetchPosition[];
}

const OFFSET_OUT_OF_RANGE = 1;

export interface FetcherOptions {
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  partitionMaxBytes: number;
}

export class FetchPartitionError extends Error {
  readonly apiId: string;
  readonly topic: string;
  readonly partition: number;
  constructor(topic: string, partition: number, errorCode: number, apiId: string) {
    super(`fetch ${topic}-${partition} failed with error ${apiId} (${errorCode})`);
    this.name = 'FetchPartitionError';
    this.apiId = apiId;
    this.topic = topic;
    this.partition = partition;
  }
}

/** The position was out of the partition's range (retention, truncation, a recreated topic). */
export function isOutOfRange(error: unknown): error is FetchPartitionError {
  return error instanceof FetchPartitionError && error.apiId === 'OFFSET_OUT_OF_RANGE';
}

export function tpKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/** Fetch session id and epoch of a sessionless full fetch (KIP-227: FINAL_EPOCH). */
const NO_SESSION_ID = 0;
const NO_SESSION_EPOCH = -1;

export class Fetcher {
  readonly #consumer: Consumer;
  readonly #options: FetcherOptions;
  /** After a failed fetch the next one refreshes the metadata (a leader may have moved). */
  #staleMetadata = false;

  constructor(consumer: Consumer, options: FetcherOptions) {
    this.#consumer = consumer;
    this.#options = options;
  }

  /** One fetch round for every position; an out-of-range position throws (restore and standbys act on it). */
  async fetch(positions: FetchPosition[]): Promise<PartitionFetch[]> {
    const round = await this.fetchRound(positions);
    const first = round.outOfRange[0];
    if (first) throw new FetchPartitionError(first.topic, first.partition, OFFSET_OUT_OF_RANGE, 'OFFSET_OUT_OF_RANGE');
    return round.fetched;
  }

  /**
   * One fetch round for every position, one request per leader, in parallel. An out-of-range position is
   * reported per partition, with the other partitions' data of the same response: it stops that partition
   * only (the processing loop and the sink), never the whole fetch.
   */
  async fetchRound(positions: FetchPosition[]): Promise<FetchRound> {
    if (positions.length === 0) return { fetched: [], outOfRange: [] };
    const topics = [...new Set(positions.map((p) => p.topic))];
    const metadata = await this.#consumer.metadata({ topics, forceUpdate: this.#staleMetadata });
    this.#staleMetadata = false;
    const byNode = new Map<number, Map<string, Array<{ partition: number; offset: bigint; epoch: number }>>>();
    const topicById = new Map<string, string>();
    for (const { topic, partition, offset } of positions) {
      const info = metadata.topics.get(topic);
      const leader = info?.partitions[partition];
      if (!info || !leader) throw new Error(`no metadata for ${topic}-${partition}`);
      topicById.set(info.id, topic);
      let node = byNode.get(leader.leader);
      if (!node) byNode.set(leader.leader, (node = new Map()));
      let list = node.get(info.id);
      if (!list) node.set(info.id, (list = []));
      list.push({ partition, offset, epoch: leader.leaderEpoch });
    }
    const requested = new Map(positions.map((p) => [tpKey(p.topic, p.partition), p.offset]));
    const responses = await Promise.all(
      [...byNode].map(async ([node, byTopic]) => {
        const broker = metadata.brokers.get(node);
        if (!broker) throw new Error(`broker ${node} (a leader) is not in the metadata`);
        const request: fetchV17.FetchRequestTopic[] = [...byTopic].map(([topicId, parts]) => ({
          topicId,
          partitions: parts.map((p) => ({
            partition: p.partition,
            fetchOffset: p.offset,
            partitionMaxBytes: this.#options.partitionMaxBytes,
            currentLeaderEpoch: p.epoch,
            lastFetchedEpoch: -1,
          })),
        }));
        try {
          const connection = await this.#consumer.connections.get(broker);
          const { maxWaitMs, minBytes, maxBytes } = this.#options;
          return await fetchV17.api.async(
            connection,
            maxWaitMs,
            minBytes,
            maxBytes,
            READ_COMMITTED,
            NO_SESSION_ID,
            NO_SESSION_EPOCH,
            request,
            [],
            '',
          );
        } catch (error) {
          // A partition error comes with the whole response; #collect names the partition. An out-of-range
          // position is for the caller to act on (restore and standbys wipe and restart).
          const response = kafkaErrorIds(error).has('OFFSET_OUT_OF_RANGE') ? responseOf(error) : undefined;
          if (response !== undefined) return response;
          this.#staleMetadata = true;
          throw error;
        }
      }),
    );
    const round: FetchRound = { fetched: [], outOfRange: [] };
    for (const response of responses) this.#collect(response, topicById, requested, round);
    return round;
  }

  #collect(
    response: FetchResponse,
    topicById: Map<string, string>,
    requested: Map<string, bigint>,
    round: FetchRound,
  ): void {
    const out = round.fetched;
    for (const topicResponse of response.responses) {
      const topic = topicById.get(topicResponse.topicId);
      if (!topic) continue;
      for (const p of topicResponse.partitions) {
        const key = tpKey(topic, p.partitionIndex);
        const from = requested.get(key);
        if (from === undefined) continue;
        if (p.errorCode === OFFSET_OUT_OF_RANGE) {
          round.outOfRange.push({ topic, partition: p.partitionIndex, offset: from });
          continue;
        }
        if (p.errorCode !== 0)
          throw new FetchPartitionError(topic, p.partitionIndex, p.errorCode, errorName(p.errorCode));
        // The Java read_committed rule (src/kafka/read-committed.ts): aborted batches become empty shells.
        filterAbortedBatches(p);
        const records: FetchedRecord[] = [];
        let nextOffset = from;
        for (const batch of p.records ?? []) {
          const last = batchLastOffset(batch);
          if (last + 1n > nextOffset) nextOffset = last + 1n;
          if (isControlBatch(batch)) continue;
          for (const record of batch.records) {
            const offset = batch.firstOffset + BigInt(record.offsetDelta);
            if (offset < from) continue;
            records.push({
              topic,
              partition: p.partitionIndex,
              offset,
              key: record.key,
              value: record.value,
              timestamp: Number(batch.firstTimestamp + record.timestampDelta),
              headers: toHeaders(record.headers),
            });
          }
        }
        out.push({
          topic,
          partition: p.partitionIndex,
          records,
          nextOffset,
          highWatermark: p.highWatermark,
          lastStableOffset: p.lastStableOffset,
        });
      }
    }
  }
}

/** Input records a fetch round brought, over every partition. */
export function recordsOf(round: Pick<FetchRound, 'fetched'>): number {
  let records = 0;
  for (const part of round.fetched) records += part.records.length;
  return records;
}

/**
 * Headers objects with no Object.prototype in their chain, so a header named "__proto__" (or
 * "constructor", "toString") is an own header like any other, never the object's prototype or an
 * inherited method. Made with `new` from a class whose prototype is an empty null-prototype object rather
 * than with Object.create(null): V8 keeps the latter in dictionary mode, and building one per fetched
 * record was ~9 % of a restore's CPU (a fast-mode object with the same names is ~5× cheaper to build).
 */
function headersClass(): new () => Record<string, Buffer> {
  function RecordHeaders(this: Record<string, Buffer>): void {}
  RecordHeaders.prototype = Object.create(null) as object;
  Object.freeze(RecordHeaders.prototype);
  return RecordHeaders as unknown as new () => Record<string, Buffer>;
}
const RecordHeaders = headersClass();
const EMPTY_HEADERS: Headers = Object.freeze(new RecordHeaders());

/**
 * The last header name decoded and its bytes: the engine's internal records (legs, changelogs) carry one
 * header, `bankstream.mac`, so most records reuse the string (one byte compare) instead of decoding UTF-8
 * again. Records with several names (dead letters) miss and decode, as before the cache.
 */
let lastNameBytes: Buffer | undefined;
let lastName = '';

function headerName(bytes: Buffer): string {
  if (lastNameBytes !== undefined && bytes.length === lastNameBytes.length && bytes.equals(lastNameBytes))
    return lastName;
  lastName = bytes.toString('utf8');
  // A copy: the fetched bytes are a view into the response, which may be reused.
  lastNameBytes = Buffer.from(bytes);
  return lastName;
}

/** A fetched record's header list as an object (the last of two same-named headers wins); exported for its tests. */
export function toHeaders(entries: Array<[Buffer | null, Buffer | null]>): Headers {
  if (entries.length === 0) return EMPTY_HEADERS;
  const headers = new RecordHeaders();
  for (let i = 0; i < entries.length; i++) {
    const [k, v] = entries[i]!;
    if (k) headers[headerName(k)] = v ?? Buffer.alloc(0);
  }
  return headers;
}

const ERROR_NAMES: Record<number, string> = {
  1: 'OFFSET_OUT_OF_RANGE',
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  6: 'NOT_LEADER_OR_FOLLOWER',
  74: 'FENCED_LEADER_EPOCH',
  75: 'UNKNOWN_LEADER_EPOCH',
  100: 'UNKNOWN_TOPIC_ID',
};

type FetchResponse = fetchV17.FetchResponse;

/** The fetch response a ResponseError carries (somewhere in the client's error tree). */
function responseOf(error: unknown): FetchResponse | undefined {
  return findInErrorTree(error, (node) => {
    const response = node.response as { responses?: unknown } | undefined;
    return Array.isArray(response?.responses) ? (response as FetchResponse) : undefined;
  });
}

function errorName(code: number): string {
  return ERROR_NAMES[code] ?? `KAFKA_ERROR_${code}`;
}
