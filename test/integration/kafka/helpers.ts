// Shared helpers for the Kafka integration tests (real broker, default 127.0.0.1:9092).
import { randomBytes } from 'node:crypto';
import {
  Consumer,
  FetchIsolationLevels,
  Producer,
  type Admin,
  type MessagesStream,
  type ProducerOptions,
} from '@platformatic/kafka';
import { createAdmin, type KafkaClientConfig } from '../../../src/kafka/clients.ts';
import type { FetchResponse } from '../../../src/kafka/read-committed.ts';

export const BOOTSTRAP = (process.env.KAFKA_BOOTSTRAP ?? '127.0.0.1:9092').split(',');

export function clientConfig(clientId: string): KafkaClientConfig {
  return { bootstrapBrokers: BOOTSTRAP, clientId, requestTimeoutMs: 15_000, retries: 3, retryDelayMs: 100 };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

const createdGroups = new Set<string>();

/** A unique consumer group id, deleted by TopicFixture#dispose. */
export function groupName(prefix: string): string {
  const group = uniqueName(prefix);
  createdGroups.add(group);
  return group;
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes clients (in order), never throwing; for finally blocks. */
export async function closeAll(...clients: Array<{ close(): Promise<void> } | undefined>): Promise<void> {
  for (const client of clients) {
    if (client) {
      await withTimeout(client.close(), 10_000, 'close client').catch(() => {});
    }
  }
}

/**
 * Waits until every partition of a new topic has a leader. A topic is created before its leaders are
 * elected; a transactional produce sent in between fails with NOT_LEADER_OR_FOLLOWER, and the test
 * clients' three retries 100 ms apart are too few on a busy machine.
 */
async function waitForLeaders(admin: Admin, topic: string, partitions: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true }).catch(() => undefined);
    const led = metadata?.topics.get(topic)?.partitions.filter((partition) => partition.leader >= 0).length ?? 0;
    if (led === partitions) return;
    if (Date.now() > deadline)
      throw new Error(`topic ${topic}: ${led} of ${partitions} partitions have a leader after 15 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export class TopicFixture {
  readonly admin: Admin;
  readonly topics: string[] = [];

  constructor() {
    this.admin = createAdmin(clientConfig(uniqueName('test-admin')));
  }

  async create(prefix: string, partitions: number): Promise<string> {
    const topic = uniqueName(prefix);
    await withTimeout(
      this.admin.createTopics({ topics: [topic], partitions, replicas: 1 }),
      15_000,
      `create topic ${topic}`,
    );
    this.topics.push(topic);
    await waitForLeaders(this.admin, topic, partitions);
    return topic;
  }

  async dispose(): Promise<void> {
    for (const group of createdGroups) {
      // Only groups that were joined or got offsets exist; the others answer GROUP_ID_NOT_FOUND.
      await withTimeout(this.admin.deleteGroups({ groups: [group] }), 10_000, `delete group ${group}`).catch(() => {});
    }
    createdGroups.clear();
    if (this.topics.length > 0) {
      await withTimeout(this.admin.deleteTopics({ topics: this.topics }), 15_000, 'delete topics').catch(() => {});
    }
    await closeAll(this.admin);
  }
}

/** The raw library producer (no bankstream fixes), transactional. */
export function rawTransactionalProducer(
  transactionalId: string,
  extra: Partial<ProducerOptions<Buffer, Buffer, Buffer, Buffer>> = {},
): Producer {
  return new Producer({
    bootstrapBrokers: BOOTSTRAP,
    clientId: uniqueName('raw-producer'),
    idempotent: true,
    transactionalId,
    timeout: 10_000,
    retries: 3,
    retryDelay: 100,
    ...extra,
  });
}

/** The raw library consumer (its own read_committed filter). */
export function rawConsumer(groupId = groupName('raw-group')): Consumer {
  return new Consumer({
    bootstrapBrokers: BOOTSTRAP,
    clientId: uniqueName('raw-consumer'),
    groupId,
    isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    autocommit: false,
    maxWaitTime: 200,
    retries: 3,
    retryDelay: 100,
  });
}

export interface FetchedRecord {
  partition: number;
  offset: bigint;
  key: string;
  value: string;
}

/**
 * Reads one partition with direct `consumer.fetch` calls (read_committed) from `from` until the
 * fetch position reaches `until` (an offset at or below the LSO), like the MessagesStream does:
 * the next fetch starts after the last batch of the previous response; control batches and
 * records below the fetch offset are skipped.
 */
export async function fetchPartition(
  consumer: Consumer,
  topic: string,
  partition: number,
  from: bigint,
  until: bigint,
  partitionMaxBytes = 1_048_576,
  onResponse?: (response: FetchResponse, fetchOffset: bigint) => void,
): Promise<FetchedRecord[]> {
  const metadata = await consumer.metadata({ topics: [topic] });
  const topicMetadata = metadata.topics.get(topic)!;
  const leader = topicMetadata.partitions[partition]!.leader;
  const records: FetchedRecord[] = [];
  let position = from;
  for (let round = 0; position < until; round++) {
    if (round > 10_000) {
      throw new Error('fetchPartition: no progress');
    }
    const fetchOffset = position;
    const response = await consumer.fetch({
      node: leader,
      maxWaitTime: 100,
      maxBytes: Math.max(partitionMaxBytes, 1),
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      topics: [
        {
          topicId: topicMetadata.id,
          partitions: [{ partition, fetchOffset, partitionMaxBytes, currentLeaderEpoch: -1, lastFetchedEpoch: -1 }],
        },
      ],
    });
    onResponse?.(response, fetchOffset);
    const partitionResponse = response.responses[0]?.partitions.find((p) => p.partitionIndex === partition);
    const batches = partitionResponse?.records ?? [];
    for (const batch of batches) {
      const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      if (last + 1n > position) {
        position = last + 1n;
      }
      if ((batch.attributes & 0x20) !== 0) {
        continue;
      }
      for (const record of batch.records) {
        const offset = batch.firstOffset + BigInt(record.offsetDelta);
        if (offset < fetchOffset) {
          continue;
        }
        records.push({ partition, offset, key: record.key?.toString() ?? '', value: record.value?.toString() ?? '' });
      }
    }
  }
  return records;
}

/** Collects messages from a consume() stream until `predicate` holds, then quiet for `settleMs`. */
export async function collect<T>(
  stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>,
  map: (message: { key: Buffer; value: Buffer; partition: number; offset: bigint; topic: string }) => T,
  done: (items: T[]) => boolean,
  timeoutMs: number,
  settleMs = 500,
): Promise<T[]> {
  const items: T[] = [];
  return withTimeout(
    new Promise<T[]>((resolve, reject) => {
      let settle: NodeJS.Timeout | undefined;
      const finish = () => {
        stream.removeListener('data', onData);
        stream.removeListener('error', onError);
        resolve(items);
      };
      const onData = (message: { key: Buffer; value: Buffer; partition: number; offset: bigint; topic: string }) => {
        items.push(map(message));
        if (done(items)) {
          clearTimeout(settle);
          settle = setTimeout(finish, settleMs);
        }
      };
      const onError = (error: Error) => {
        clearTimeout(settle);
        reject(error);
      };
      stream.on('data', onData);
      stream.on('error', onError);
    }),
    timeoutMs,
    'collect messages from stream',
  );
}

export async function lastStableOffset(consumer: Consumer, topic: string, partition: number): Promise<bigint> {
  const offsets = await consumer.listOffsets({
    topics: [topic],
    partitions: { [topic]: [partition] },
    isolationLevel: FetchIsolationLevels.READ_COMMITTED,
  });
  return offsets.get(topic)![partition]!;
}

export async function highWatermark(consumer: Consumer, topic: string, partition: number): Promise<bigint> {
  const offsets = await consumer.listOffsets({
    topics: [topic],
    partitions: { [topic]: [partition] },
    isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
  });
  return offsets.get(topic)![partition]!;
}

/**
 * EndTxn returns once the coordinator has logged PrepareCommit/PrepareAbort; the markers reach the
 * partitions a little later. Waits until no transaction is open on the partition (LSO = high
 * watermark) and returns that offset.
 */
export async function waitForStableEnd(
  consumer: Consumer,
  topic: string,
  partition: number,
  timeoutMs = 10_000,
): Promise<bigint> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [lso, hw] = [
      await lastStableOffset(consumer, topic, partition),
      await highWatermark(consumer, topic, partition),
    ];
    if (lso === hw) {
      return lso;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `LSO ${lso} did not reach the high watermark ${hw} of ${topic}-${partition} within ${timeoutMs} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until the partition's LSO is at least `atLeast` and returns it. */
export async function waitForLso(
  consumer: Consumer,
  topic: string,
  partition: number,
  atLeast: bigint,
  timeoutMs = 10_000,
): Promise<bigint> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lso = await lastStableOffset(consumer, topic, partition);
    if (lso >= atLeast) {
      return lso;
    }
    if (Date.now() > deadline) {
      throw new Error(`LSO of ${topic}-${partition} stayed at ${lso} (< ${atLeast}) for ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const text = (value: string) => Buffer.from(value, 'utf8');
