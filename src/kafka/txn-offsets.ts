// Adding consumer offsets for many partitions to a transaction (EOS v2 / KIP-447).
//
// THE TRAP: Transaction#addOffset(message) sends one TxnOffsetCommit per partition through
// `kPerformDeduplicated('commit', ...)`: a call made while another is in flight is answered with
// the first call's result and its own offset is never sent (silently lost). Promise.all over
// addOffset calls therefore commits one offset per round and drops the rest; the transaction
// then commits outputs without the matching input offsets, so after a restart those inputs are
// processed again (duplicates). The library also sends the partition's *current metadata* leader
// epoch instead of the consumed record's epoch.
//
// THE FIX: `sendOffsetsToTransaction` sends ONE TxnOffsetCommit for all partitions (like the Java
// client's sendOffsetsToTransaction) through the client's exported protocol API, with the
// group's generation id, member id and group instance id, so the group coordinator fences a
// zombie that lost its partitions in a rebalance (KIP-447). It first adds the group to the
// transaction (AddOffsetsToTxn, via Transaction#addConsumer).
//
// Retries: only the errors the Java client retries for TxnOffsetCommit (coordinator moved or
// loading, request timed out, unknown partition metadata, network errors), within a deadline.
// Any other error (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, PRODUCER_FENCED,
// authorization...) is thrown at once and marks a guarded transaction as failed, so it can only
// be aborted. This is not "retrying the commit": the offsets only count if EndTxn commits.
import {
  FindCoordinatorKeyTypes,
  findErrorBy,
  kGetApi,
  kGetBootstrapConnection,
  kGetConnection,
  type API,
  type Connection,
  type Consumer,
  type Producer,
  type findCoordinatorV6,
  type txnOffsetCommitV4,
} from '@platformatic/kafka';
import { markTransactionFailed } from './producer.ts';

/** One partition's position to commit: `offset` is the NEXT offset to consume (last processed + 1). */
export interface TransactionOffset {
  topic: string;
  partition: number;
  offset: bigint;
  /** Leader epoch of the last consumed record (message.leaderEpoch); -1 when unknown. */
  leaderEpoch?: number;
  metadata?: string | null;
}

/** The consumer group identity a TxnOffsetCommit is fenced with (KIP-447). */
export interface ConsumerGroupMetadata {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}

export interface SendOffsetsOptions {
  /** Give up retrying retriable errors after this long (default 30 000 ms). */
  timeoutMs?: number;
  /** Pause between retries (default 100 ms). */
  retryBackoffMs?: number;
}

// biome-ignore lint/suspicious/noExplicitAny: the client's generic parameters are irrelevant here
type AnyConsumer = Consumer<any, any, any, any>;
// biome-ignore lint/suspicious/noExplicitAny: the client's generic parameters are irrelevant here
type AnyProducer = Producer<any, any, any, any>;
type TxnOffsetCommitApi = API<txnOffsetCommitV4.TxnOffsetCommitRequest, txnOffsetCommitV4.TxnOffsetCommitResponse>;
type FindCoordinatorApi = API<findCoordinatorV6.FindCoordinatorRequest, findCoordinatorV6.FindCoordinatorResponse>;

const RETRY_WITH_NEW_COORDINATOR = ['NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE', 'REQUEST_TIMED_OUT'];
const RETRY_SAME_COORDINATOR = ['COORDINATOR_LOAD_IN_PROGRESS', 'UNKNOWN_TOPIC_OR_PARTITION'];

/** The group metadata of a consumer that has joined its group; throws when it has not. */
export function consumerGroupMetadata(consumer: AnyConsumer): ConsumerGroupMetadata {
  if (!consumer.memberId) {
    throw new Error(
      `Consumer of group "${consumer.groupId}" has not joined the group: no member id to fence offsets with.`,
    );
  }
  return {
    groupId: consumer.groupId,
    generationId: consumer.generationId,
    memberId: consumer.memberId,
    groupInstanceId: consumer.groupInstanceId,
  };
}

function groupByTopic(offsets: readonly TransactionOffset[]): txnOffsetCommitV4.TxnOffsetCommitRequestTopic[] {
  const merged = new Map<string, Map<number, TransactionOffset>>();
  for (const offset of offsets) {
    if (offset.offset < 0n) {
      throw new RangeError(`Invalid offset ${offset.offset} for ${offset.topic}-${offset.partition}`);
    }
    let partitions = merged.get(offset.topic);
    if (!partitions) {
      partitions = new Map();
      merged.set(offset.topic, partitions);
    }
    const existing = partitions.get(offset.partition);
    if (!existing || existing.offset < offset.offset) {
      partitions.set(offset.partition, offset);
    }
  }
  return [...merged].map(([name, partitions]) => ({
    name,
    partitions: [...partitions.values()].map((p) => ({
      partitionIndex: p.partition,
      committedOffset: p.offset,
      committedLeaderEpoch: p.leaderEpoch ?? -1,
      committedMetadata: p.metadata ?? null,
    })),
  }));
}

function getApi<T>(client: AnyProducer, name: string): Promise<T> {
  return new Promise((resolve, reject) => {
    client[kGetApi](name, (error, api) => (error ? reject(error) : resolve(api as T)));
  });
}

function getConnection(client: AnyProducer, broker: { host: string; port: number }): Promise<Connection> {
  return new Promise((resolve, reject) => {
    client[kGetConnection](broker, (error, connection) => (error ? reject(error) : resolve(connection!)));
  });
}

function getBootstrapConnection(client: AnyProducer, attempt: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    client[kGetBootstrapConnection]((error, connection) => (error ? reject(error) : resolve(connection!)), attempt);
  });
}

async function findGroupCoordinator(
  client: AnyProducer,
  groupId: string,
  attempt: number,
): Promise<{ host: string; port: number }> {
  const connection = await getBootstrapConnection(client, attempt);
  const api = await getApi<FindCoordinatorApi>(client, 'FindCoordinator');
  const response = await api.async(connection, FindCoordinatorKeyTypes.GROUP, [groupId]);
  const coordinator = response.coordinators.find((c) => c.key === groupId) ?? response.coordinators[0];
  if (!coordinator) {
    throw new Error(`FindCoordinator returned no coordinator for group "${groupId}"`);
  }
  return { host: coordinator.host, port: coordinator.port };
}

function isRetriable(error: unknown, apiIds: readonly string[]): boolean {
  if (!(error instanceof Error)) {
    return false;
  }
  return apiIds.some((apiId) => findErrorBy(error, 'apiId', apiId) !== null);
}

function isNetworkError(error: unknown): boolean {
  return (
    error instanceof Error &&
    (findErrorBy(error, 'code', 'PLT_KFK_NETWORK') !== null || findErrorBy(error, 'code', 'PLT_KFK_TIMEOUT') !== null)
  );
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Adds consumer offsets for any number of partitions to the producer's open transaction with ONE
 * TxnOffsetCommit request (after AddOffsetsToTxn for the group). `group` is either the joined
 * consumer (its current generation/member id are used) or an explicit ConsumerGroupMetadata
 * snapshot (take it when the batch was polled, as Kafka Streams does).
 *
 * Await it before committing the transaction. On failure the (guarded) transaction can only be
 * aborted.
 */
export async function sendOffsetsToTransaction(
  producer: AnyProducer,
  consumer: AnyConsumer,
  offsets: readonly TransactionOffset[],
  options: SendOffsetsOptions & { group?: ConsumerGroupMetadata } = {},
): Promise<void> {
  const transaction = producer.transaction;
  if (!transaction || transaction.completed) {
    throw new Error('sendOffsetsToTransaction needs an open transaction on the producer (beginTransaction first).');
  }
  if (offsets.length === 0) {
    return;
  }
  try {
    const group = options.group ?? consumerGroupMetadata(consumer);
    if (group.groupId !== consumer.groupId) {
      throw new Error(`Group metadata is for "${group.groupId}" but the consumer belongs to "${consumer.groupId}".`);
    }
    const topics = groupByTopic(offsets);
    const producerId = producer.producerId;
    const producerEpoch = producer.producerEpoch;
    if (producerId === undefined || producerEpoch === undefined) {
      throw new Error('The producer has no producer id: it is not initialised for transactions.');
    }

    // AddOffsetsToTxn: makes the transaction coordinator include the group's offsets in the commit.
    await transaction.addConsumer(consumer);

    const timeoutMs = options.timeoutMs ?? 30_000;
    const backoffMs = options.retryBackoffMs ?? 100;
    const deadline = Date.now() + timeoutMs;
    let coordinator: { host: string; port: number } | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        coordinator ??= await findGroupCoordinator(producer, group.groupId, attempt);
        const connection = await getConnection(producer, coordinator);
        const api = await getApi<TxnOffsetCommitApi>(producer, 'TxnOffsetCommit');
        await api.async(
          connection,
          transaction.id,
          group.groupId,
          producerId,
          producerEpoch,
          group.generationId,
          group.memberId,
          group.groupInstanceId,
          topics,
        );
        return;
      } catch (error) {
        const newCoordinator = isRetriable(error, RETRY_WITH_NEW_COORDINATOR) || isNetworkError(error);
        const retriable = newCoordinator || isRetriable(error, RETRY_SAME_COORDINATOR);
        if (!retriable || Date.now() + backoffMs > deadline) {
          throw error;
        }
        if (newCoordinator) {
          coordinator = undefined;
        }
        await sleep(backoffMs);
      }
    }
  } catch (error) {
    markTransactionFailed(transaction, error);
    throw error;
  }
}
