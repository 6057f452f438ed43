// Reads a group's committed offsets with require_stable (KIP-447): while another member's transaction
// with offsets for these partitions is still open, the broker answers UNSTABLE_OFFSET_COMMIT and we wait.
// Without it, a new owner would start from the previous commit and duplicate what the old owner is
// committing right now. @platformatic/kafka's listCommittedOffsets sends require_stable=false, so the
// request is sent here through the client's exported protocol API on a connection of our own.
import { type Consumer, Connection, type ConnectionOptions, offsetFetchV8 } from '@platformatic/kafka';

const UNSTABLE_OFFSET_COMMIT = 88;
const RETRIABLE = new Set([
  14 /* COORDINATOR_LOAD_IN_PROGRESS */,
  15 /* COORDINATOR_NOT_AVAILABLE */,
  16 /* NOT_COORDINATOR */,
  UNSTABLE_OFFSET_COMMIT,
]);

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
    const result = await fetchOnce(consumer, topics, options).catch((error: unknown) => ({ retry: String(error) }));
    if (result instanceof Map) return result;
    if (Date.now() > deadline)
      throw new Error(
        `committed offsets of group ${consumer.groupId} did not become stable within ${options.timeoutMs} ms (${result.retry})`,
      );
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(options.retryDelayMs * 2 ** Math.min(attempt, 4), 1000)),
    );
  }
}

async function fetchOnce(
  consumer: Consumer,
  topics: Map<string, number[]>,
  options: StableOffsetsOptions,
): Promise<Map<string, bigint> | { retry: string }> {
  const coordinator = await consumer.findGroupCoordinator();
  const metadata = await consumer.metadata({ topics: [...topics.keys()] });
  const broker = metadata.brokers.get(coordinator);
  if (!broker) return { retry: `coordinator ${coordinator} is not in the metadata` };
  const connection = new Connection(options.clientId, options.connection);
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
    return toOffsets(response);
  } catch (error) {
    const code = (error as { response?: { groups?: Array<{ errorCode: number }> } }).response?.groups?.[0]?.errorCode;
    if (code !== undefined && RETRIABLE.has(code)) return { retry: `error code ${code}` };
    const nested = JSON.stringify((error as { errors?: unknown }).errors ?? '');
    if (
      /UNSTABLE_OFFSET_COMMIT|NOT_COORDINATOR|COORDINATOR_LOAD_IN_PROGRESS|COORDINATOR_NOT_AVAILABLE/.test(
        `${String(error)} ${nested}`,
      )
    )
      return { retry: String(error) };
    throw error;
  } finally {
    await connection.close().catch(() => undefined);
  }
}

function toOffsets(
  response: Awaited<ReturnType<typeof offsetFetchV8.api.async>>,
): Map<string, bigint> | { retry: string } {
  const offsets = new Map<string, bigint>();
  for (const group of response.groups) {
    if (group.errorCode !== 0)
      return RETRIABLE.has(group.errorCode)
        ? { retry: `group error ${group.errorCode}` }
        : failure(`group error ${group.errorCode}`);
    for (const topic of group.topics) {
      for (const p of topic.partitions) {
        if (p.errorCode !== 0)
          return RETRIABLE.has(p.errorCode)
            ? { retry: `partition error ${p.errorCode}` }
            : failure(`partition ${topic.name}-${p.partitionIndex} error ${p.errorCode}`);
        offsets.set(`${topic.name}\u0000${p.partitionIndex}`, p.committedOffset);
      }
    }
  }
  return offsets;
}

function failure(message: string): never {
  throw new Error(`OffsetFetch failed: ${message}`);
}
