// Reads a group's committed offsets with require_stable (KIP-447): while another member's transaction
// with offsets for these partitions is still open, the broker answers UNSTABLE_OFFSET_COMMIT and we wait.
// Without it, a new owner would start from the previous commit and duplicate what the old owner is
// committing right now. @platformatic/kafka's listCommittedOffsets sends require_stable=false, so the
// request is sent here through the client's exported protocol API on a connection of our own.
//
// Errors decide (classifyOffsetFetchError): an answer that waiting cannot change (authorization,
// authentication, an unknown topic or group) fails at once with a message naming it; an open
// transaction, a moving coordinator, a rebalance or an unreachable broker is asked again until the
// deadline. An error of neither kind is retried too, within the same deadline: an unexpected answer
// while a broker restarts must not stop an instance that would have recovered.
import { type Consumer, Connection, type ConnectionOptions, offsetFetchV8 } from '@platformatic/kafka';
import type { KafkaSecurityOptions } from './clients.ts';
import { kafkaErrorIds } from './errors.ts';
import { isBrokerUnavailable } from './retry.ts';
import { explainKafkaError } from './security.ts';

/** Answers that waiting cannot change, by protocol error code and name. */
const FAIL_FAST = new Map<number, string>([
  [3, 'UNKNOWN_TOPIC_OR_PARTITION'],
  [24, 'INVALID_GROUP_ID'],
  [29, 'TOPIC_AUTHORIZATION_FAILED'],
  [30, 'GROUP_AUTHORIZATION_FAILED'],
  [31, 'CLUSTER_AUTHORIZATION_FAILED'],
  [33, 'UNSUPPORTED_SASL_MECHANISM'],
  [34, 'ILLEGAL_SASL_STATE'],
  [58, 'SASL_AUTHENTICATION_FAILED'],
  [69, 'GROUP_ID_NOT_FOUND'],
  [100, 'UNKNOWN_TOPIC_ID'],
]);

/** Answers that say "not now": an open transaction, a coordinator moving or loading, a rebalance. */
const RETRIABLE = new Map<number, string>([
  [14, 'COORDINATOR_LOAD_IN_PROGRESS'],
  [15, 'COORDINATOR_NOT_AVAILABLE'],
  [16, 'NOT_COORDINATOR'],
  [27, 'REBALANCE_IN_PROGRESS'],
  [88, 'UNSTABLE_OFFSET_COMMIT'],
]);
const FAIL_FAST_IDS = new Set(FAIL_FAST.values());
const RETRIABLE_IDS = new Set(RETRIABLE.values());

/** Committed offsets could not be read and waiting will not change that (ACLs, credentials, names). */
export class CommittedOffsetsError extends Error {
  /** The broker's error name (GROUP_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_OR_PARTITION, …). */
  readonly apiId: string;
  constructor(apiId: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CommittedOffsetsError';
    this.apiId = apiId;
  }
}

/** What a failed OffsetFetch asks for: ask again later, or stop with this error. */
export type OffsetFetchVerdict = { retry: string } | { fail: Error };

export interface StableOffsetsOptions {
  clientId: string;
  connection: ConnectionOptions;
  /** Bound on the whole wait (open transactions resolve within the transaction timeout). */
  timeoutMs: number;
  retryDelayMs: number;
}

/** Committed next offsets per "topic\0partition"; -1n when the group never committed that partition. */
export async function fetchStableOffsets(
  consumer: Consumer,
  topics: Map<string, number[]>,
  options: StableOffsetsOptions,
): Promise<Map<string, bigint>> {
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const result = await fetchOnce(consumer, topics, options).catch(
      (error: unknown): OffsetFetchVerdict =>
        classifyOffsetFetchError(error, consumer.groupId, options.connection as KafkaSecurityOptions),
    );
    if (result instanceof Map) return result;
    if ('fail' in result) throw result.fail;
    if (Date.now() > deadline)
      throw new Error(
        `committed offsets of group ${consumer.groupId} did not become stable within ${options.timeoutMs} ms (${result.retry})`,
      );
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(options.retryDelayMs * 2 ** Math.min(attempt, 4), 1000)),
    );
  }
}

/**
 * The decision for an error thrown while reading committed offsets: authorization, authentication and
 * unknown topics or groups fail (with the setting to check, when security is the cause); everything
 * else is asked again within the deadline.
 */
export function classifyOffsetFetchError(
  error: unknown,
  groupId: string,
  security?: KafkaSecurityOptions,
): OffsetFetchVerdict {
  if (error instanceof CommittedOffsetsError) return { fail: error };
  const ids = kafkaErrorIds(error);
  const access = explainKafkaError(error, security);
  if (access && !access.mayHeal) return { fail: access };
  const fatal = [...ids].find((id) => FAIL_FAST_IDS.has(id));
  if (fatal) return { fail: fatalError(fatal, groupId, error) };
  const retriable = [...ids].find((id) => RETRIABLE_IDS.has(id));
  if (retriable) return { retry: retriable };
  if (isBrokerUnavailable(error)) return { retry: `broker unavailable: ${message(error)}` };
  return { retry: message(error) };
}

function fatalError(apiId: string, groupId: string, cause: unknown): CommittedOffsetsError {
  const what = apiId.includes('TOPIC')
    ? 'a source topic does not exist (run "bankstream topics create")'
    : apiId.includes('GROUP')
      ? `group ${groupId} is refused or invalid (check KAFKA_SASL_USERNAME's ACLs on the group)`
      : 'the broker refused this client (check the Kafka credentials and ACLs)';
  return new CommittedOffsetsError(apiId, `cannot read the committed offsets of group ${groupId}: ${apiId}, ${what}`, {
    cause,
  });
}

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 300);
}

async function fetchOnce(
  consumer: Consumer,
  topics: Map<string, number[]>,
  options: StableOffsetsOptions,
): Promise<Map<string, bigint> | OffsetFetchVerdict> {
  const coordinator = await consumer.findGroupCoordinator();
  const metadata = await consumer.metadata({ topics: [...topics.keys()] });
  const broker = metadata.brokers.get(coordinator);
  if (!broker) return { retry: `coordinator ${coordinator} is not in the metadata` };
  const connection = new Connection(options.clientId, options.connection);
  // A connection of our own, not of the client's pool: nothing else listens for its 'error' event, which
  // it emits when the socket fails after connecting (a broker restarting, a reset mid-request). Without
  // a listener Node throws it and the instance exits; the request in flight rejects on its own, and that
  // rejection is what decides (retried until the deadline).
  connection.on('error', () => undefined);
  try {
    await connection.connect(broker.host, broker.port);
    const response = await offsetFetchV8.api.async(
      connection,
      [
        {
          groupId: consumer.groupId,
          memberEpoch: -1,
          topics: [...topics].map(([name, partitionIndexes]) => ({ name, partitionIndexes })),
        },
      ],
      true,
    );
    return toOffsets(response, consumer.groupId);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** The offsets of a response, or the verdict on its first group or partition error. */
export function toOffsets(
  response: Awaited<ReturnType<typeof offsetFetchV8.api.async>>,
  groupId: string,
): Map<string, bigint> | OffsetFetchVerdict {
  const offsets = new Map<string, bigint>();
  for (const group of response.groups) {
    if (group.errorCode !== 0) return verdictOfCode(group.errorCode, `group ${groupId}`, groupId);
    for (const topic of group.topics) {
      for (const p of topic.partitions) {
        if (p.errorCode !== 0)
          return verdictOfCode(p.errorCode, `partition ${topic.name}-${p.partitionIndex}`, groupId);
        offsets.set(`${topic.name}\u0000${p.partitionIndex}`, p.committedOffset);
      }
    }
  }
  return offsets;
}

function verdictOfCode(code: number, where: string, groupId: string): OffsetFetchVerdict {
  const retriable = RETRIABLE.get(code);
  if (retriable) return { retry: `${where}: ${retriable}` };
  const fatal = FAIL_FAST.get(code);
  if (fatal) return { fail: fatalError(fatal, groupId, new Error(`${where}: error ${code}`)) };
  return { retry: `${where}: error ${code}` };
}
