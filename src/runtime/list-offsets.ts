// ListOffsets (read_committed) for some partitions of some topics, keyed by tpKey.
import type { Consumer } from '@platformatic/kafka';
import { READ_COMMITTED, tpKey } from '../kafka/fetcher.ts';

/** `timestamp` is ListOffsetTimestamps.EARLIEST (log start) or LATEST (last stable offset, read_committed). */
export async function listOffsets(
  consumer: Consumer,
  partitions: Record<string, number[]>,
  timestamp: bigint,
): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>();
  if (Object.keys(partitions).length === 0) return out;
  const listed = await consumer.listOffsets({
    topics: Object.keys(partitions),
    partitions,
    timestamp,
    isolationLevel: READ_COMMITTED,
  });
  for (const [topic, offsets] of listed)
    offsets.forEach((offset, partition) => out.set(tpKey(topic, partition), offset));
  return out;
}
